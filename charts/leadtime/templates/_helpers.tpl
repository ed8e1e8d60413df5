{{/* Chart name, truncated to the 63 characters Kubernetes allows in names and labels. */}}
{{- define "leadtime.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name: "<release>-leadtime" unless the release already says leadtime. */}}
{{- define "leadtime.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "leadtime.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "leadtime.selectorLabels" -}}
app.kubernetes.io/name: {{ include "leadtime.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "leadtime.labels" -}}
helm.sh/chart: {{ include "leadtime.chart" . }}
{{ include "leadtime.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "leadtime.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "leadtime.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "leadtime.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* True (non-empty) when the operator watches every namespace. */}}
{{- define "leadtime.clusterWide" -}}
{{- if not .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/* Rules the operator needs wherever ModelDeployments live: its resource, the children, events. */}}
{{- define "leadtime.namespacedRules" -}}
# ModelDeployments: watch them, keep kopf's progress annotations, write status.
- apiGroups: [serving.leadtime.dev]
  resources: [modeldeployments]
  verbs: [get, list, watch, patch, update]
- apiGroups: [serving.leadtime.dev]
  resources: [modeldeployments/status]
  verbs: [get, patch, update]
# The replicas of each pool: one Deployment and one Service per pool, scaled through /scale.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [create, get, list, watch, patch, update, delete]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [get, patch, update]
- apiGroups: [""]
  resources: [services]
  verbs: [create, get, list, watch, patch, update, delete]
# Pods are read (readiness, start-to-Ready durations, Pending) and, just before a scale-down, patched
# with controller.kubernetes.io/pod-deletion-cost so the least busy replicas go first. ReplicaSets are
# read to tell the pods of our own Deployments from look-alikes.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch]
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list]
# Scale events on the ModelDeployment (kubectl describe).
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
