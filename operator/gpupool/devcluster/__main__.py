"""`python -m gpupool.devcluster up|down|status|kubeconfig` (what `make cluster-up` runs)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gpupool.devcluster.binaries import REPO_ROOT
from gpupool.devcluster.controller_specs import SPECS
from gpupool.devcluster.controllers import running
from gpupool.devcluster.local import DEFAULT_NAME, DevCluster
from gpupool.devcluster.nodes import DEFAULT_PRODUCT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gpupool.devcluster",
        description="The local Kubernetes control plane (kwok, no Docker) with fake GPU nodes.",
    )
    parser.add_argument("--name", default=DEFAULT_NAME, help="cluster name (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the cluster (kept if already up)")
    up.add_argument("--nodes", type=int, default=4)
    up.add_argument("--gpus-per-node", type=int, default=8)
    up.add_argument("--racks", type=int, default=2)
    up.add_argument("--zones", type=int, default=1)
    up.add_argument("--nodes-per-nvlink-domain", type=int, default=2)
    up.add_argument("--product", default=DEFAULT_PRODUCT, help="nvidia.com/gpu.product label")
    up.add_argument(
        "--crds", type=Path, default=REPO_ROOT / "crds", help="CRD directory (default: crds/)"
    )
    up.add_argument("--recreate", action="store_true", help="replace a running cluster")
    up.add_argument(
        "--controllers",
        default="",
        help=f"workload controllers to run, comma-separated ({', '.join(SPECS)}); "
        "built on first use (minutes each)",
    )
    commands.add_parser("down", help="delete the cluster and end its processes")
    commands.add_parser("status", help="is it up, and where is its kubeconfig")
    commands.add_parser("kubeconfig", help="print the kubeconfig's path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        started = time.monotonic()
        cluster = DevCluster.start(
            name=args.name,
            nodes=args.nodes,
            gpus_per_node=args.gpus_per_node,
            racks=args.racks,
            zones=args.zones,
            nodes_per_nvlink_domain=args.nodes_per_nvlink_domain,
            product=args.product,
            crds=args.crds,
            reuse=not args.recreate,
            controllers=[name for name in args.controllers.split(",") if name],
        )
        print(cluster.kubectl("get", "nodes", "-L", "nvidia.com/gpu.product,gpupool.io/rack"))
        print(f"up in {time.monotonic() - started:.1f}s; use it with:")
        print(f"  export KUBECONFIG={cluster.kubeconfig}")
        print(f"  {cluster.kubectl_binary} get nodes")
        for controller in running(cluster.directory).values():
            print(f"  {controller.spec.name}: log {controller.log_file}")
        return 0
    existing = DevCluster.existing(args.name)
    if args.command == "down":
        if existing is None:
            print(f"no cluster {args.name}")
        else:
            existing.stop()
            print(f"cluster {args.name} deleted")
        return 0
    if existing is None:
        print(f"no cluster {args.name}", file=sys.stderr)
        return 1
    if args.command == "kubeconfig":
        print(existing.kubeconfig)
        return 0
    state = "up" if existing.healthy() else "NOT healthy"
    print(f"cluster {args.name}: {state}; kubeconfig {existing.kubeconfig}")
    return 0 if state == "up" else 1


if __name__ == "__main__":
    sys.exit(main())
