"""Worker pods and the headless Service: names, labels, binding, GPUs, env, hooks."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from gpupool.api import GPUJobSpec
from gpupool.controller.manifests import (
    DEFAULT_MASTER_PORT,
    GPU_RESOURCE,
    LABEL_INCARNATION,
    LABEL_JOB,
    LABEL_TEAM,
    LABEL_WORKER_INDEX,
    dns_label,
    gpu_toleration,
    headless_service,
    job_selector,
    label_value,
    master_addr,
    needs_service,
    pod_name,
    service_name,
    worker_pod,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

JOB: dict[str, Any] = {
    "apiVersion": "gpupool.io/v1alpha1",
    "kind": "GPUJob",
    "metadata": {"name": "resnet", "namespace": "vision-train", "uid": "1234-abcd"},
}


def spec_of(**changes: Any) -> GPUJobSpec:
    template: dict[str, Any] = {
        "metadata": {"labels": {"app": "resnet"}, "annotations": {"note": "kept"}},
        "spec": {
            "containers": [
                {
                    "name": "train",
                    "image": "pytorch:2",
                    "env": [{"name": "DATA", "value": "/data"}],
                    "resources": {"limits": {"memory": "64Gi"}},
                },
                {"name": "logger", "image": "fluent-bit:3"},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    raw: dict[str, Any] = {"gpusPerWorker": 8, "workers": 2, "template": template, **changes}
    return GPUJobSpec.model_validate(raw)


def build(spec: GPUJobSpec | None = None, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "team": "vision",
        "index": 1,
        "world_size": 2,
        "node": "gpu-node-07",
        "incarnation": 0,
        "resume_from": None,
        **overrides,
    }
    return worker_pod(JOB, spec or spec_of(), **arguments)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {variable["name"]: variable.get("value", "") for variable in container["env"]}


def test_name_labels_owner_and_binding() -> None:
    pod = build(incarnation=3)
    metadata = pod["metadata"]
    assert metadata["name"] == "resnet-3-1"
    assert metadata["namespace"] == "vision-train"
    assert metadata["labels"] == {
        "app": "resnet",
        LABEL_JOB: "resnet",
        LABEL_TEAM: "vision",
        LABEL_WORKER_INDEX: "1",
        LABEL_INCARNATION: "3",
        "app.kubernetes.io/managed-by": "gpupool",
    }
    assert metadata["annotations"] == {"note": "kept"}
    assert metadata["ownerReferences"] == [
        {
            "apiVersion": "gpupool.io/v1alpha1",
            "kind": "GPUJob",
            "name": "resnet",
            "uid": "1234-abcd",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = pod["spec"]
    assert spec["nodeName"] == "gpu-node-07"
    assert spec["restartPolicy"] == "Never"
    assert spec["hostname"] == "resnet-3-1"
    assert spec["subdomain"] == "resnet"
    assert spec["volumes"] == [{"name": "data", "emptyDir": {}}]


def test_template_labels_cannot_override_gpupool_labels() -> None:
    spec = spec_of()
    spec.template["metadata"]["labels"][LABEL_JOB] = "someone-else"
    assert build(spec)["metadata"]["labels"][LABEL_JOB] == "resnet"


def test_gpus_only_on_the_first_container() -> None:
    pod = build()
    train, logger = pod["spec"]["containers"]
    assert train["resources"] == {
        "limits": {"memory": "64Gi", GPU_RESOURCE: "8"},
        "requests": {GPU_RESOURCE: "8"},
    }
    assert "resources" not in logger


def test_conflicting_gpu_requests_in_the_template_are_overridden() -> None:
    spec = spec_of()
    containers = spec.template["spec"]["containers"]
    containers[0]["resources"] = {"limits": {GPU_RESOURCE: "2"}, "requests": {GPU_RESOURCE: 2}}
    containers[1]["resources"] = {"limits": {GPU_RESOURCE: "1", "cpu": "1"}}
    spec.template["spec"]["initContainers"] = [
        {"name": "warmup", "image": "x", "resources": {"requests": {GPU_RESOURCE: "16"}}}
    ]
    pod = build(spec)
    train, logger = pod["spec"]["containers"]
    assert train["resources"]["limits"][GPU_RESOURCE] == "8"
    assert train["resources"]["requests"][GPU_RESOURCE] == "8"
    assert logger["resources"] == {"limits": {"cpu": "1"}}
    assert "resources" not in pod["spec"]["initContainers"][0]


def test_rendezvous_env_on_every_container() -> None:
    pod = build(index=1, world_size=4, incarnation=2, resume_from="s3://ckpt/step-1200")
    for container in pod["spec"]["containers"]:
        env = env_of(container)
        assert env["WORLD_SIZE"] == "4"
        assert env["RANK"] == "1"
        assert env["LOCAL_RANK"] == "0"
        assert env["MASTER_ADDR"] == "resnet-2-0.resnet.vision-train.svc"
        assert env["MASTER_PORT"] == str(DEFAULT_MASTER_PORT)
        assert env["GPUPOOL_JOB"] == "resnet"
        assert env["GPUPOOL_TEAM"] == "vision"
        assert env["GPUPOOL_INCARNATION"] == "2"
        assert env["GPUPOOL_RESTART_COUNT"] == "2"
        assert env["GPUPOOL_RESUME_FROM"] == "s3://ckpt/step-1200"
        assert env["GPUPOOL_TERMINATION_LOG"] == "/dev/termination-log"
        assert container["terminationMessagePath"] == "/dev/termination-log"
    names = [variable["name"] for variable in pod["spec"]["containers"][0]["env"]]
    assert len(names) == len(set(names))
    # The template's own variables come after gpupool's, so they may refer to $(RANK).
    assert names[-1] == "DATA"


def test_no_resume_variable_on_a_fresh_start() -> None:
    env = env_of(build(resume_from=None)["spec"]["containers"][0])
    assert "GPUPOOL_RESUME_FROM" not in env
    assert env["GPUPOOL_RESTART_COUNT"] == "0"


def test_master_addr_resolves_through_the_pod_hostname_and_service() -> None:
    pod0 = build(index=0, incarnation=5)
    env = env_of(pod0["spec"]["containers"][0])
    host = f"{pod0['spec']['hostname']}.{pod0['spec']['subdomain']}.vision-train.svc"
    assert env["MASTER_ADDR"] == host == master_addr("resnet", "vision-train", 5)


@pytest.mark.parametrize(
    ("workers", "service"),
    [
        ({"workers": 1}, False),
        ({"workers": 2}, True),
        ({"workers": None, "minWorkers": 1, "maxWorkers": 1}, False),
        # An elastic job that starts alone may grow: its workers will need rank 0.
        ({"workers": None, "minWorkers": 1, "maxWorkers": 4}, True),
    ],
)
def test_only_a_job_that_can_have_several_workers_gets_a_service(
    workers: dict[str, Any], service: bool
) -> None:
    spec = spec_of(**workers)
    assert needs_service(spec) is service
    pod = build(spec, index=0, world_size=1)
    env = env_of(pod["spec"]["containers"][0])
    assert pod["spec"]["hostname"] == "resnet-0-0"
    if service:
        assert pod["spec"]["subdomain"] == "resnet"
        assert env["MASTER_ADDR"] == master_addr("resnet", "vision-train", 0)
    else:
        assert "subdomain" not in pod["spec"]
        assert env["MASTER_ADDR"] == "localhost"


def test_a_template_subdomain_is_dropped_when_there_is_no_service() -> None:
    spec = spec_of(workers=1)
    spec.template["spec"]["subdomain"] = "elsewhere"
    assert "subdomain" not in build(spec, index=0, world_size=1)["spec"]


def test_template_may_choose_master_port_but_not_rank() -> None:
    spec = spec_of()
    spec.template["spec"]["containers"][0]["env"] = [
        {"name": "MASTER_PORT", "value": "23456"},
        {"name": "RANK", "value": "99"},
    ]
    pod = build(spec)
    train, logger = (env_of(container) for container in pod["spec"]["containers"])
    assert train["MASTER_PORT"] == logger["MASTER_PORT"] == "23456"
    assert train["RANK"] == "1"
    assert headless_service(JOB, spec, team="vision")["spec"]["ports"][0]["port"] == 23456


def test_termination_message_settings_are_kept() -> None:
    spec = spec_of()
    spec.template["spec"]["containers"][0].update(
        terminationMessagePolicy="FallbackToLogsOnError",
        terminationMessagePath="/tmp/ckpt-message",
    )
    train, logger = build(spec)["spec"]["containers"]
    assert train["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert train["terminationMessagePath"] == "/tmp/ckpt-message"
    assert env_of(train)["GPUPOOL_TERMINATION_LOG"] == "/tmp/ckpt-message"
    assert "terminationMessagePolicy" not in logger
    assert logger["terminationMessagePath"] == "/dev/termination-log"


def test_signal_hook_sets_the_grace_period_and_mode() -> None:
    pod = build(spec_of(checkpoint={"mode": "signal", "timeoutSeconds": 300}))
    assert pod["spec"]["terminationGracePeriodSeconds"] == 300
    env = env_of(pod["spec"]["containers"][0])
    assert env["GPUPOOL_CHECKPOINT_MODE"] == "signal"
    assert env["GPUPOOL_CHECKPOINT_TIMEOUT"] == "300"
    assert "GPUPOOL_CHECKPOINT_PORT" not in env


def test_http_hook_keeps_the_template_grace_period_and_exports_the_endpoint() -> None:
    spec = spec_of(
        checkpoint={"mode": "httpPost", "httpPost": {"port": 8080, "path": "/save"}},
    )
    spec.template["spec"]["terminationGracePeriodSeconds"] = 45
    pod = build(spec)
    assert pod["spec"]["terminationGracePeriodSeconds"] == 45
    env = env_of(pod["spec"]["containers"][0])
    assert env["GPUPOOL_CHECKPOINT_MODE"] == "httpPost"
    assert env["GPUPOOL_CHECKPOINT_PORT"] == "8080"
    assert env["GPUPOOL_CHECKPOINT_PATH"] == "/save"


def test_without_hook_no_grace_override_and_no_mode() -> None:
    pod = build()
    assert "terminationGracePeriodSeconds" not in pod["spec"]
    assert "GPUPOOL_CHECKPOINT_MODE" not in env_of(pod["spec"]["containers"][0])


def test_tolerations_merge_without_duplicates() -> None:
    spec = spec_of()
    own = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    spec.template["spec"]["tolerations"] = [own, gpu_toleration()]
    kwok = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
    pod = build(spec, extra_tolerations=[kwok, kwok])
    assert pod["spec"]["tolerations"] == [own, gpu_toleration(), kwok]


def test_the_template_is_never_modified_and_pods_share_nothing_they_change() -> None:
    spec = spec_of()
    before = copy.deepcopy(spec.template)
    first = build(spec, index=0)
    second = build(spec, index=1)
    assert spec.template == before
    first["spec"]["containers"][0]["env"].append({"name": "X", "value": "1"})
    first["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "3"
    first["spec"]["tolerations"].append({"key": "y"})
    first["metadata"]["labels"]["z"] = "1"
    assert spec.template == before
    assert "X" not in env_of(second["spec"]["containers"][0])
    assert "cpu" not in second["spec"]["containers"][0]["resources"]["limits"]
    assert {"key": "y"} not in second["spec"]["tolerations"]
    json.dumps(first)


@pytest.mark.parametrize(
    "job_name",
    ["resnet", "a" * 63, "x" * 253, "llama.70b.sft", "7b-run", "a.b" + "c" * 80],
)
def test_names_stay_valid_dns_labels(job_name: str) -> None:
    name = pod_name(job_name, 12345, 4095)
    assert DNS_LABEL.match(name) and len(name) <= 63
    assert name.endswith("-12345-4095")
    service = service_name(job_name)
    assert DNS_1035.match(service) and len(service) <= 63
    value = label_value(job_name)
    assert LABEL_VALUE.match(value) and len(value) <= 63
    host = master_addr(job_name, "ns", 3).split(".")[0]
    assert DNS_LABEL.match(host) and len(host) <= 63


def test_short_valid_names_are_unchanged_and_distinct_long_names_stay_distinct() -> None:
    assert pod_name("resnet", 0, 1) == "resnet-0-1"
    assert service_name("resnet") == "resnet"
    assert label_value("resnet") == "resnet"
    long_a, long_b = "x" * 100 + "a", "x" * 100 + "b"
    assert pod_name(long_a, 0, 0) != pod_name(long_b, 0, 0)
    assert service_name(long_a) != service_name(long_b)
    assert label_value(long_a) != label_value(long_b)
    # Cleaning alone would make these equal; the hash keeps them apart.
    assert service_name("a.b") != service_name("a-b")
    assert dns_label("7b", letter_first=True)[0].isalpha()


def test_headless_service() -> None:
    service = headless_service(JOB, spec_of(), team="vision")
    assert service["metadata"]["name"] == "resnet"
    assert service["metadata"]["namespace"] == "vision-train"
    assert service["metadata"]["ownerReferences"][0]["uid"] == "1234-abcd"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {LABEL_JOB: "resnet"}
    assert service["spec"]["ports"][0]["port"] == DEFAULT_MASTER_PORT
    assert job_selector("resnet") == f"{LABEL_JOB}=resnet"
    pod = build()
    assert all(pod["metadata"]["labels"][k] == v for k, v in service["spec"]["selector"].items())


def test_a_burst_of_4000_pods_has_4000_distinct_names() -> None:
    spec = spec_of(checkpoint={"mode": "signal", "timeoutSeconds": 120})
    pods = [build(spec, index=i % 512, world_size=512, incarnation=i // 512) for i in range(4000)]
    assert len({pod["metadata"]["name"] for pod in pods}) == 4000


def test_workers_request_the_configured_gpu_resource() -> None:
    pod = build(gpu_resource="amd.com/gpu")
    train = pod["spec"]["containers"][0]
    assert train["resources"]["limits"] == {"memory": "64Gi", "amd.com/gpu": "8"}
    assert GPU_RESOURCE not in str(pod["spec"]["containers"])
    assert gpu_toleration("amd.com/gpu") in pod["spec"]["tolerations"]
