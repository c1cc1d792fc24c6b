"""How the workload helper reaches a training pod without any package index: the chart's
ConfigMap (a copy of the one module), mounted by the examples where train.py imports it.
Nothing in the repository installs `gpupool` from an index (it is not published there)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from gpupool.controller.termination import parse_termination_message
from gpupool.generate import WORKLOAD_SOURCE

ROOT = Path(__file__).resolve().parents[3]
CHART_COPY = ROOT / "helm" / "gpupool" / "files" / "workload.py"
HELPER_CONFIGMAP = "gpupool-workload"
# Installing this package by its name from an index (pip, uv pip, pipx); a local path or a
# wheel file is fine.
INSTALLS_FROM_AN_INDEX = re.compile(
    r"\b(pip3?|uv pip|pipx)\s+install\b[^\n]*(?<![\w./-])" + "gpu" + r"pool(?![\w./-])"
)


def test_the_charts_copy_is_the_module() -> None:
    assert CHART_COPY.read_bytes() == WORKLOAD_SOURCE.read_bytes(), (
        f"{CHART_COPY} drifted from {WORKLOAD_SOURCE}: run `make crds`"
    )


def test_nothing_in_the_repository_installs_gpupool_from_an_index() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if not path.is_file() or path.suffix in (".png", ".gz", ".parquet"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        offenders += [f"{name}: {m.group(0)}" for m in INSTALLS_FROM_AN_INDEX.finditer(text)]
    assert not offenders
    assert INSTALLS_FROM_AN_INDEX.search("pip install --no-deps " + "gpu" + "pool")
    assert not INSTALLS_FROM_AN_INDEX.search("pip install /tmp/wheels/gpupool-0.1.0.whl")


def helper_users() -> list[tuple[str, dict[str, Any]]]:
    """The example GPUJobs whose code imports the helper."""
    found = []
    for path in sorted((ROOT / "examples").rglob("gpujob.yaml")):
        job = yaml.safe_load(path.read_text())
        command = " ".join(job["spec"]["template"]["spec"]["containers"][0].get("command", []))
        if "train.py" in command:
            found.append((str(path.relative_to(ROOT)), job))
    return found


def test_the_examples_mount_the_helper_where_train_py_imports_it() -> None:
    users = helper_users()
    assert {name for name, _ in users} == {
        "examples/pytorch-ddp/gpujob.yaml",
        "examples/elastic/gpujob.yaml",
    }
    assert "from gpupool.workload import" in (ROOT / "examples/pytorch-ddp/train.py").read_text()
    for name, job in users:
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert "pip" not in " ".join(container["command"] + container.get("args", [])), name
        volumes = {
            volume["name"]: volume["configMap"]["name"]
            for volume in pod["volumes"]
            if "configMap" in volume
        }
        mounts = {
            mount["mountPath"]: mount["name"]
            for mount in container["volumeMounts"]
            if volumes.get(mount["name"]) == HELPER_CONFIGMAP
        }
        env = {item["name"]: item["value"] for item in container["env"]}
        # The ConfigMap's key workload.py lands as <mount>/workload.py = gpupool/workload.py
        # under a PYTHONPATH entry.
        roots = {f"{entry}/gpupool" for entry in env["PYTHONPATH"].split(":")}
        assert roots & set(mounts), (name, mounts, env["PYTHONPATH"])


def test_the_mounted_file_alone_checkpoints_on_sigterm(tmp_path: Path) -> None:
    """The ConfigMap's file, as the volume lays it out, in a Python without site-packages
    (no gpupool installed): the example's import works and a SIGTERM checkpoints."""
    mount = tmp_path / "opt" / "gpupool" / "gpupool"
    mount.mkdir(parents=True)
    (mount / "workload.py").write_bytes(CHART_COPY.read_bytes())
    log = tmp_path / "termination-log"
    script = """
import sys, time
import gpupool.workload as helper
from gpupool.workload import Checkpointer, resume_from
assert helper.__file__.startswith(sys.argv[1]), helper.__file__
assert resume_from() is None
Checkpointer(lambda: "/ckpt/step-7").install()
print("ready", flush=True)
time.sleep(20)
"""
    child = subprocess.Popen(
        [sys.executable, "-S", "-u", "-c", script, str(mount)],
        env={"PYTHONPATH": str(mount.parent), "GPUPOOL_TERMINATION_LOG": str(log)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready = child.stdout.readline()
        assert ready.strip() == "ready", child.stderr.read() if child.stderr else ready
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=5)
    assert child.returncode == 143, err
    assert parse_termination_message(log.read_text()) == "/ckpt/step-7"
