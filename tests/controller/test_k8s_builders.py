"""Children manifests: names, ownership, labels, placement per pool, GPUs, probe, annotations."""

from __future__ import annotations

import copy

from leadtime.k8s.builders import build_deployment, build_service, pools_of, service_pools

SPOT_TOLERATION = {"key": "leadtime.dev/capacity-type", "operator": "Equal", "value": "spot", "effect": "NoSchedule"}

MD = {
    "apiVersion": "serving.leadtime.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "llama", "namespace": "ml", "uid": "u-1", "generation": 1},
    "spec": {
        "model": {
            "image": "vllm/vllm-openai:v0.6.0",
            "args": ["--model", "meta-llama/Llama-3.1-8B"],
            "env": [{"name": "HF_HOME", "value": "/cache"}],
            "port": 8000,
            "gpus": 2,
            "resources": {"requests": {"memory": "32Gi"}},
            "podAnnotations": {"leadtime.dev/cold-start": "20s"},
        },
        "replicas": {"warmFloor": 2, "max": 10},
        "pools": {
            "interactive": {"nodeSelector": {"leadtime.dev/capacity-type": "on-demand"}, "tolerations": []},
            "batch": {
                "enabled": True,
                "nodeSelector": {"leadtime.dev/capacity-type": "spot"},
                "tolerations": [SPOT_TOLERATION],
                "onDemandFallback": {"enabled": True},
            },
        },
    },
}


def test_pools_follow_batch_and_fallback_switches():
    assert pools_of(MD) == ("interactive", "batch", "batch-ondemand")
    assert service_pools(MD) == ("interactive", "batch")
    no_fallback = copy.deepcopy(MD)
    no_fallback["spec"]["pools"]["batch"]["onDemandFallback"]["enabled"] = False
    assert pools_of(no_fallback) == ("interactive", "batch")
    no_batch = copy.deepcopy(MD)
    no_batch["spec"]["pools"]["batch"]["enabled"] = False
    assert pools_of(no_batch) == ("interactive",)


def test_interactive_deployment_is_owned_labelled_and_on_demand():
    dep = build_deployment(MD, "interactive", replicas=2)
    meta = dep["metadata"]
    assert meta["name"] == "llama" and meta["namespace"] == "ml"
    assert meta["ownerReferences"] == [
        {"apiVersion": "serving.leadtime.dev/v1alpha1", "kind": "ModelDeployment", "name": "llama", "uid": "u-1",
         "controller": True, "blockOwnerDeletion": True}
    ]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "leadtime"
    assert meta["labels"]["serving.leadtime.dev/model"] == "llama"
    assert meta["labels"]["serving.leadtime.dev/pool"] == "interactive"
    spec = dep["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"] == {"serving.leadtime.dev/model": "llama", "serving.leadtime.dev/pool": "interactive"}
    pod = spec["template"]
    assert pod["metadata"]["labels"]["serving.leadtime.dev/pool"] == "interactive"
    assert pod["metadata"]["annotations"] == {"leadtime.dev/cold-start": "20s"}
    assert pod["spec"]["nodeSelector"] == {"leadtime.dev/capacity-type": "on-demand"}
    assert "tolerations" not in pod["spec"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "vllm/vllm-openai:v0.6.0"
    assert container["args"] == ["--model", "meta-llama/Llama-3.1-8B"]
    assert container["resources"] == {
        "requests": {"memory": "32Gi", "nvidia.com/gpu": "2"},
        "limits": {"nvidia.com/gpu": "2"},
    }
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert container["ports"][0]["containerPort"] == 8000


def test_batch_runs_on_spot_and_fallback_on_on_demand():
    batch = build_deployment(MD, "batch", replicas=0)
    assert batch["metadata"]["name"] == "llama-batch"
    assert batch["spec"]["template"]["spec"]["nodeSelector"] == {"leadtime.dev/capacity-type": "spot"}
    assert batch["spec"]["template"]["spec"]["tolerations"] == [SPOT_TOLERATION]
    fallback = build_deployment(MD, "batch-ondemand", replicas=0)
    assert fallback["metadata"]["name"] == "llama-batch-ondemand"
    assert fallback["metadata"]["labels"]["serving.leadtime.dev/pool"] == "batch-ondemand"
    assert fallback["spec"]["template"]["spec"]["nodeSelector"] == {"leadtime.dev/capacity-type": "on-demand"}
    assert "tolerations" not in fallback["spec"]["template"]["spec"]


def test_env_as_mapping_and_builders_do_not_alias_the_spec():
    md = copy.deepcopy(MD)
    md["spec"]["model"]["env"] = {"A": 1}
    dep = build_deployment(md, "batch", replicas=0)
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    dep["spec"]["template"]["spec"]["tolerations"].append({"key": "x"})
    assert md["spec"]["pools"]["batch"]["tolerations"] == [SPOT_TOLERATION]
    assert build_deployment(md, "interactive", replicas=1) == build_deployment(md, "interactive", replicas=1)


def test_services_select_a_request_class():
    interactive = build_service(MD, "interactive")
    assert interactive["metadata"]["name"] == "llama"
    assert interactive["spec"]["selector"] == {"serving.leadtime.dev/model": "llama", "serving.leadtime.dev/class": "interactive"}
    batch = build_service(MD, "batch")
    assert batch["metadata"]["name"] == "llama-batch"
    # The batch Service reaches spot replicas and on-demand fallback replicas alike.
    assert batch["spec"]["selector"] == {"serving.leadtime.dev/model": "llama", "serving.leadtime.dev/class": "batch"}
    fallback_pod_labels = build_deployment(MD, "batch-ondemand", replicas=0)["spec"]["template"]["metadata"]["labels"]
    assert all(fallback_pod_labels[k] == v for k, v in batch["spec"]["selector"].items())
    assert batch["spec"]["ports"][0]["port"] == 8000
