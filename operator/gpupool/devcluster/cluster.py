"""Any cluster reached through a kubeconfig: kubectl, CRDs, fake GPU nodes, RBAC helpers.

`DevCluster` (local.py) adds the local control plane's life cycle on top; this class is
what tests get when KUBECONFIG names a cluster of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gpupool.devcluster import binaries
from gpupool.devcluster.nodes import DEFAULT_PRODUCT, NOT_READY_ANNOTATION, Topology, gpu_nodes

T = TypeVar("T")
Manifest = str | Mapping[str, Any] | Sequence[Mapping[str, Any]]

KUBECTL_TIMEOUT = 60.0


class KubectlError(RuntimeError):
    """kubectl exited with an error; `stderr` has the API server's message."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} failed ({returncode}): {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


def wait_until(
    what: str, probe: Callable[[], T | None], *, timeout: float, interval: float = 0.25
) -> T:
    """Call `probe` until it returns something truthy; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def find_kubectl() -> Path:
    """The kubectl built with the control plane, else one on PATH."""
    try:
        return binaries.kubectl()
    except FileNotFoundError:
        found = shutil.which("kubectl")
        if found is None:
            raise
        return Path(found)


def _documents(manifest: Manifest) -> str:
    if isinstance(manifest, str):
        return manifest
    if isinstance(manifest, Mapping):
        return json.dumps(manifest)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifest)})


class Cluster:
    """A cluster named by a kubeconfig file."""

    def __init__(self, kubeconfig: Path, *, kubectl_binary: Path | None = None) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.kubectl_binary = kubectl_binary or find_kubectl()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.kubeconfig)!r})"

    # --- kubectl ----------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = KUBECTL_TIMEOUT,
    ) -> str:
        """Run kubectl on this cluster; its stdout. KubectlError if it fails and `check`."""
        command = [str(self.kubectl_binary), "--kubeconfig", str(self.kubeconfig), *args]
        completed = subprocess.run(
            command,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )
        if check and completed.returncode != 0:
            raise KubectlError(args, completed.returncode, completed.stderr)
        return completed.stdout

    def kubectl_json(self, *args: str, timeout: float = KUBECTL_TIMEOUT) -> Any:
        """`kubectl <args> -o json`, parsed."""
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout))

    def apply(self, manifest: Manifest, *, server_side: bool = False) -> str:
        """`kubectl apply` a YAML/JSON string, an object or a list of objects."""
        args = ["apply", "-f", "-"]
        if server_side:
            args += ["--server-side", "--force-conflicts"]
        return self.kubectl(*args, input=_documents(manifest))

    def create(self, manifest: Manifest) -> str:
        """`kubectl create` (keeps `status`, which `apply` would record in an annotation)."""
        return self.kubectl("create", "-f", "-", input=_documents(manifest))

    def reachable(self, timeout: float = 5.0) -> bool:
        """Whether the API server answers /readyz."""
        try:
            out = self.kubectl("get", "--raw", "/readyz", check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return out.strip() == "ok"

    def wait_reachable(self, timeout: float = 60.0) -> None:
        wait_until("the API server's /readyz", lambda: self.reachable(), timeout=timeout)

    # --- CRDs -------------------------------------------------------------------------

    def apply_crds(self, paths: Iterable[Path], *, timeout: float = 60.0) -> list[str]:
        """Apply CRD manifests and wait until each is Established; the CRD names."""
        names: list[str] = []
        for path in sorted(paths):
            text = path.read_text(encoding="utf-8")
            for doc in yaml.safe_load_all(text):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    names.append(doc["metadata"]["name"])
            self.apply(text, server_side=True)
        # Not `kubectl wait`: it fails instead of waiting on a CRD with no conditions yet.
        for name in names:
            wait_until(
                f"CRD {name} Established", partial(self._crd_established, name), timeout=timeout
            )
        return names

    def _crd_established(self, name: str) -> bool:
        status = self.kubectl_json("get", "crd", name).get("status") or {}
        return any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in status.get("conditions") or ()
        )

    def apply_crd_directory(self, directory: Path, *, timeout: float = 60.0) -> list[str]:
        """Apply every `*.yaml` in `directory` (none is fine) as in `apply_crds`."""
        return self.apply_crds(directory.glob("*.yaml"), timeout=timeout)

    # --- fake GPU nodes ----------------------------------------------------------------

    def node_names(self, selector: str | None = None) -> list[str]:
        args = ["get", "nodes", "-o", "name"]
        if selector:
            args += ["-l", selector]
        return [line.removeprefix("node/") for line in self.kubectl(*args).split()]

    def add_gpu_nodes(
        self,
        count: int,
        gpus_per_node: int = 8,
        *,
        racks: int = 1,
        zones: int = 1,
        nodes_per_nvlink_domain: int = 1,
        product: str = DEFAULT_PRODUCT,
        labels: Mapping[str, str] | None = None,
        prefix: str = "gpu",
        wait: bool = True,
        timeout: float = 60.0,
    ) -> list[str]:
        """Create `count` kwok GPU nodes named `<prefix>-<n>` (numbering continues after
        existing ones); wait until kwok reports them Ready. Their names."""
        topology = Topology(
            racks=racks,
            zones=zones,
            nodes_per_nvlink_domain=nodes_per_nvlink_domain,
            product=product,
            labels=dict(labels or {}),
        )
        taken = [
            int(suffix)
            for name in self.node_names()
            if (suffix := name.removeprefix(f"{prefix}-")) != name and suffix.isdigit()
        ]
        start = max(taken, default=-1) + 1
        manifests = gpu_nodes(count, gpus_per_node, topology, prefix=prefix, start=start)
        if not manifests:
            return []
        self.create(manifests)
        names = [m["metadata"]["name"] for m in manifests]
        if wait:
            self.wait_nodes_ready(names, True, timeout=timeout)
        return names

    def node_ready(self, name: str) -> bool | None:
        """The node's Ready condition: True, False, or None when unknown/absent."""
        node = self.kubectl_json("get", "node", name)
        for condition in (node.get("status") or {}).get("conditions") or ():
            if condition.get("type") == "Ready":
                return {"True": True, "False": False}.get(condition.get("status"))
        return None

    def wait_nodes_ready(self, names: Sequence[str], ready: bool, *, timeout: float = 60.0) -> None:
        """Wait until every node's Ready condition is `ready`."""
        if not names:
            return
        status = "true" if ready else "false"
        self.kubectl(
            "wait",
            f"--for=condition=Ready={status}",
            *(f"node/{name}" for name in names),
            f"--timeout={timeout:.0f}s",
            timeout=timeout + 10,
        )

    def set_node_ready(
        self, name: str, ready: bool, *, wait: bool = True, timeout: float = 30.0
    ) -> None:
        """Make kwok report the node Ready or NotReady (annotation the Stages react to)."""
        value = f"{NOT_READY_ANNOTATION}-" if ready else f"{NOT_READY_ANNOTATION}=true"
        self.kubectl("annotate", "node", name, value, "--overwrite")
        if wait:
            self.wait_nodes_ready([name], ready, timeout=timeout)

    def delete_nodes(self, names: Sequence[str]) -> None:
        if names:
            self.kubectl("delete", "node", "--ignore-not-found", "--wait=false", *names)

    # --- namespaces and RBAC -------------------------------------------------------------

    def create_namespace(self, name: str, *, timeout: float = 30.0) -> None:
        """Create a namespace and wait for its default ServiceAccount (which pods need)."""
        self.kubectl("create", "namespace", name)
        wait_until(
            f"the default ServiceAccount of {name}",
            lambda: self.kubectl(
                "get", "serviceaccount", "default", "-n", name, "--ignore-not-found", "-o", "name"
            ).strip(),
            timeout=timeout,
        )

    def delete_namespace(self, name: str, *, wait: bool = False) -> None:
        self.kubectl(
            "delete", "namespace", name, "--ignore-not-found", f"--wait={str(wait).lower()}"
        )

    def service_account_kubeconfig(
        self, namespace: str, name: str, path: Path, *, duration: str = "1h"
    ) -> Path:
        """A kubeconfig at `path` that authenticates as ServiceAccount `namespace/name`
        with a token from the TokenRequest API (`kubectl create token`)."""
        token = self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}")
        current = self.kubectl_json("config", "view", "--raw", "--minify", "--flatten")
        cluster = current["clusters"][0]
        user = f"system:serviceaccount:{namespace}:{name}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": user, "user": {"token": token.strip()}}],
            "contexts": [
                {
                    "name": user,
                    "context": {"cluster": cluster["name"], "user": user, "namespace": namespace},
                }
            ],
            "current-context": user,
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        path.chmod(0o600)
        return path
