#!/usr/bin/env bash
# Builds the real control-plane binaries from the Go module proxy and caches them outside the repo,
# keyed by version. A second run is a no-op when every cached binary answers --version.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${HELM_VERSION:-v3.21.4}"
CACHE_ROOT="${LEADTIME_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/leadtime}"
BIN="$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION/bin"
mkdir -p "$BIN"
export GOFLAGS="-mod=mod" CGO_ENABLED=0 GOTOOLCHAIN=local

log() { printf '[build] %s\n' "$*" >&2; }
ok() { [ -x "$BIN/$1" ] && "$BIN/$1" "${@:2}" >/dev/null 2>&1; }

build_k8s() {
  if ok kube-apiserver --version && ok kube-controller-manager --version \
     && ok kube-scheduler --version && ok kubectl version --client; then return; fi
  log "building Kubernetes $K8S_VERSION (first build takes a while)"
  local work; work=$(mktemp -d)
  local gomod; gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  local staging_ver="v0.${K8S_VERSION#v1.}"
  (
    cd "$work"
    printf 'module leadtime.local/k8sbuild\n\ngo 1.25\n\nrequire k8s.io/kubernetes %s\n' "$K8S_VERSION" > go.mod
    # Staging modules are replaced by ./staging/... in the release tree, which the module zip lacks:
    # point each at its published version instead. Read them from the replace lines, not from
    # "v0.0.0" requires, because pseudo-versions (k8s.io/utils v0.0.0-2026...) would match too.
    grep -oE '^\s*k8s\.io/[a-z0-9/-]+ => \./staging/' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
      printf 'replace %s => %s %s\n' "$m" "$m" "$staging_ver" >> go.mod
    done
    printf 'package main\nimport (\n _ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n)\nfunc main() {}\n' > tools.go
    go mod tidy >/dev/null 2>&1 || true
    go get "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
    local major=1 minor; minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    local ld="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    done
    for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
      log "go build $cmd"
      go build -trimpath -ldflags "$ld" -o "$BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    done
  )
  rm -rf "$work"
}

build_etcd() {
  if ok etcd --version; then return; fi
  log "building etcd $ETCD_VERSION"
  local work; work=$(mktemp -d)
  (
    cd "$work"
    printf 'module leadtime.local/etcdbuild\n\ngo 1.25\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
    for m in api/v3 client/pkg/v3 client/v3 pkg/v3 server/v3 client/v2; do
      printf 'replace go.etcd.io/etcd/%s => go.etcd.io/etcd/%s %s\n' "$m" "$m" "$ETCD_VERSION" >> go.mod
    done
    sed -i '/client\/v2/d' go.mod
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
    go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  )
  rm -rf "$work"
}

build_go_install() {  # name, module path@version
  if ok "$1" version || ok "$1" --version; then return; fi
  log "go install $2"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "$2"
}

build_go_install kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
build_go_install kwokctl "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
build_etcd
build_k8s
build_go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
echo "$BIN"
