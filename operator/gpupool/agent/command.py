"""The agent command: real NVML for the DaemonSet, or fake agents for many nodes.

Installed twice: as `gpupool agent` in the CLI, and alone as `gpupool-agent` (`main`),
which the DaemonSet runs so that its process loads no other command (nor, with them,
the resource models, which the agent does not need). The heavy imports
(gRPC, NVML, Prometheus, the API client) happen when the command runs, so the rest
of the CLI starts fast.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

from gpupool.agent.config import GPU_RESOURCE, POD_LOGS, POD_RESOURCES_SOCKET, AgentConfig
from gpupool.agent.policy import PublishPolicy
from gpupool.agent.schedule import Schedule


def _scripts(values: list[str]) -> tuple[dict[int, str], str]:
    """--fake-utilization INDEX=SCRIPT (or *=SCRIPT for every GPU) -> per-GPU scripts."""
    scripts: dict[int, str] = {}
    default = "0"
    for value in values:
        index, sep, script = value.partition("=")
        if not sep:
            raise typer.BadParameter(f"{value!r}: expected INDEX=SCRIPT or *=SCRIPT")
        try:
            Schedule.parse(script)
        except ValueError as exc:
            raise typer.BadParameter(f"{value!r}: {exc}") from None
        if index.strip() == "*":
            default = script
        elif index.strip().isdigit():
            scripts[int(index)] = script
        else:
            raise typer.BadParameter(f"{value!r}: INDEX must be a GPU index or *")
    return scripts, default


def agent(
    node: list[str] = typer.Option(
        [],
        "--node",
        envvar="NODE_NAME",
        help="Node to report for (the DaemonSet sets NODE_NAME); repeat with --fake.",
    ),
    fake: bool = typer.Option(False, "--fake", help="Scripted GPUs instead of NVML."),
    kubeconfig: str | None = typer.Option(
        None, help="Kubeconfig file (default: in-cluster, then $KUBECONFIG/~/.kube/config)."
    ),
    interval: float = typer.Option(1.0, help="Seconds between samples.", min=0.05),
    publish_interval: float = typer.Option(10.0, help="Min seconds between GPUNode writes."),
    heartbeat: float = typer.Option(60.0, help="Write at least this often, changed or not."),
    utilization_threshold: float = typer.Option(
        5.0, help="Utilization points that count as a change."
    ),
    memory_threshold: float = typer.Option(
        5.0, help="Memory change, percent of total, that counts."
    ),
    active_threshold: float = typer.Option(
        1.0, help="Utilization percent above which a GPU is active."
    ),
    metrics_address: str = typer.Option("0.0.0.0", help="Prometheus listen address."),
    metrics_port: int = typer.Option(9400, help="Prometheus port (0: off)."),
    pod_resources_socket: Path = typer.Option(POD_RESOURCES_SOCKET, help="kubelet socket."),
    resource_name: list[str] = typer.Option([GPU_RESOURCE], help="Extended resource of GPUs."),
    proc_root: Path = typer.Option(Path("/proc"), help="Host /proc (needs hostPID)."),
    pod_logs: str = typer.Option(
        str(POD_LOGS), help="Host /var/log/pods: running pods' checkpoint reports ('': off)."
    ),
    fake_gpus: int | None = typer.Option(
        None, help="Fake GPUs per node (default: the Node's nvidia.com/gpu capacity)."
    ),
    fake_product: str = typer.Option("NVIDIA A100-SXM4-80GB", help="Fake GPU model name."),
    fake_utilization: list[str] = typer.Option(
        [], help="INDEX=SCRIPT or *=SCRIPT: utilization of GPUs without a pod, e.g. 0=0-60s:100"
    ),
    fake_pod_utilization: float = typer.Option(
        90.0, help="Utilization of a pod's GPU without the gpupool.io/fake-utilization annotation."
    ),
    duration: float | None = typer.Option(None, help="Stop after this many seconds."),
    log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING, ERROR."),
) -> None:
    """Sample GPUs, publish GPUNode status and serve Prometheus metrics."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    nodes = [n for entry in node for n in entry.split(",") if n]
    if not nodes:
        raise typer.BadParameter("no node: pass --node or set NODE_NAME", param_hint="--node")
    if len(nodes) > 1 and not fake:
        raise typer.BadParameter("several nodes only with --fake", param_hint="--node")
    config = AgentConfig(
        interval=interval,
        active_threshold=active_threshold,
        policy=PublishPolicy(
            interval=publish_interval,
            heartbeat=heartbeat,
            utilization_points=utilization_threshold,
            memory_fraction=memory_threshold / 100,
        ),
        pod_resources_socket=pod_resources_socket,
        resource_names=tuple(resource_name),
        proc_root=proc_root,
        pod_logs=Path(pod_logs) if pod_logs else None,
        metrics_address=metrics_address,
        metrics_port=metrics_port,
    )
    fake_config = None
    if fake:
        # Only the fakes load their module; the DaemonSet's agent never does.
        from gpupool.agent.fake import FakeConfig

        scripts, idle = _scripts(fake_utilization)
        fake_config = FakeConfig(
            gpus=fake_gpus,
            product=fake_product,
            gpu_scripts=scripts,
            idle_script=idle,
            pod_utilization=fake_pod_utilization,
            resource_name=resource_name[0] if resource_name else GPU_RESOURCE,
        )
    from gpupool.agent.main import run
    from gpupool.k8s.errors import CredentialsError

    try:
        asyncio.run(run(nodes, config, kubeconfig=kubeconfig, fake=fake_config, duration=duration))
    except CredentialsError as exc:
        typer.echo(f"gpupool agent: no cluster credentials: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    """`gpupool-agent`: the agent command on its own.

    The program name is fixed: click would otherwise derive it from how Python was
    started (`python -m ...` names the module), and the usage line is the DaemonSet's.
    """
    app = typer.Typer(add_completion=False)
    app.command()(agent)
    app(prog_name="gpupool-agent")
