"""What the DaemonSet's process loads: the agent, not the models, the fakes or the CLI.

Every module costs resident memory on every GPU node (the goal is < 60 MB), so the
agent keeps out what it does not use: pydantic and gpupool.api (its status is plain
dataclasses, checked against the models in test_wire.py), the fake backend, and the
rest of the CLI. Typer's own parameter parsing does load pydantic (not the models),
so that one is checked on the agent's modules, not on the whole command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

NOT_THE_AGENT = ("gpupool.api", "gpupool.agent.fake", "gpupool.cli", "rich")


def loaded_by(script: str) -> list[str]:
    """The modules loaded when `script` has run in a fresh interpreter."""
    report = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules))))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", report + script], capture_output=True, text=True, timeout=60
    )
    modules: list[str] = json.loads(completed.stdout.splitlines()[-1])
    return modules


def among(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


def test_the_agent_modules_import_no_pydantic() -> None:
    modules = loaded_by("import gpupool.agent.command, gpupool.agent.main")
    assert "gpupool.agent.nvml" in modules and "gpupool.agent.status" in modules
    assert among(modules, ("pydantic", *NOT_THE_AGENT)) == []


def test_gpupool_agent_runs_without_the_models_the_fakes_or_the_cli() -> None:
    # No credentials: the command parses its options, imports the agent and stops.
    modules = loaded_by(
        "from gpupool.agent.command import main\n"
        "sys.argv = ['gpupool-agent', '--node', 'n1', '--kubeconfig', '/nonexistent']\n"
        "main()\n"
    )
    assert "gpupool.agent.main" in modules and "gpupool.k8s.kubeconfig" in modules
    assert among(modules, NOT_THE_AGENT) == []


def test_in_a_pod_the_agent_reads_its_service_account_without_the_kubernetes_package(
    tmp_path: Path,
) -> None:
    """The kubernetes package (about 18 MB) is only for kubeconfigs: the DaemonSet's
    agent uses its service account, read by gpupool's own small loader."""
    account = tmp_path / "var/run/secrets/kubernetes.io/serviceaccount"
    account.mkdir(parents=True)
    (account / "token").write_text("token")
    (account / "ca.crt").write_text("CA")
    modules = loaded_by(
        "from pathlib import Path\n"
        "import gpupool.agent.main\n"
        "from gpupool.k8s import KubeClient, load_credentials\n"
        "environ = {'KUBERNETES_SERVICE_HOST': '10.0.0.1', 'KUBERNETES_SERVICE_PORT': '443'}\n"
        f"KubeClient(load_credentials(environ=environ, root=Path({str(tmp_path)!r})))\n"
    )
    assert "gpupool.k8s.client" in modules
    assert among(modules, ("kubernetes", "kopf")) == []
