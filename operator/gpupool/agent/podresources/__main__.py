"""Regenerate the PodResources stubs: `python -m gpupool.agent.podresources`.

Needs grpcio-tools at the grpcio version pinned in pyproject.toml
(`pip install grpcio-tools==1.85.1`). Writes api_pb2.py, api_pb2.pyi and
api_pb2_grpc.py beside api.proto; commit them, they are not built at install time.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

SOURCE_ROOT = Path(__file__).resolve().parents[3]
PROTO = Path(__file__).resolve().with_name("api.proto").relative_to(SOURCE_ROOT)


def main() -> int:
    root = str(SOURCE_ROOT)
    args = [
        "protoc",
        f"-I{root}",
        f"--python_out={root}",
        f"--pyi_out={root}",
        f"--grpc_python_out={root}",
        str(PROTO),
    ]
    code: int = protoc.main(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
