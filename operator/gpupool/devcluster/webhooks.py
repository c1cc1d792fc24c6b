"""A controller's own webhook configurations, pointed at its process on loopback.

The source is what its release applies: controller-gen's `manifests.yaml` in its module
and the `patches` of the kustomization next to it (JSON 6902 files with a target, and
strategic-merge patches whose webhooks merge by name: the selectors that keep a pod
webhook off other pods live there). Only the client config changes: a URL to
https://127.0.0.1:<port><path> and our CA bundle, instead of the release's Service.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

LOOPBACK = "127.0.0.1"


class ManifestError(ValueError):
    """A kustomization patches a document the manifests do not have."""


@dataclass(frozen=True)
class Webhooks:
    """A controller's webhook configurations in its module (controller-gen's output) and
    the kustomization whose patches add their selectors."""

    manifest: str
    kustomization: str
    name_prefix: str = ""
    """What the release's kustomization prefixes the configurations' names with."""
    keep: Callable[[Mapping[str, Any]], bool] = lambda _webhook: True


def render(
    webhooks: Webhooks, module: Path, *, port: int, ca_bundle: bytes
) -> list[dict[str, Any]]:
    """The webhook configurations as the controller's kustomization renders them, each
    webhook calling https://127.0.0.1:<port><its path> instead of its Service."""
    documents = [
        doc for doc in yaml.safe_load_all((module / webhooks.manifest).read_text("utf-8")) if doc
    ]
    documents = _kustomize_patches(documents, module / webhooks.kustomization)
    rendered: list[dict[str, Any]] = []
    for doc in documents:
        hooks = [_by_url(w, port, ca_bundle) for w in doc["webhooks"] if webhooks.keep(w)]
        if hooks:
            name = webhooks.name_prefix + doc["metadata"]["name"]
            rendered.append({**doc, "metadata": {"name": name}, "webhooks": hooks})
    return rendered


def _kustomize_patches(
    documents: list[dict[str, Any]], kustomization: Path
) -> list[dict[str, Any]]:
    """Apply a kustomization's `patches` to these documents: JSON 6902 ones (a file with a
    `target`) and strategic-merge ones, whose webhooks merge by name."""
    config = yaml.safe_load(kustomization.read_text(encoding="utf-8")) or {}
    result = list(documents)
    for entry in config.get("patches") or ():
        text = entry.get("patch") or (kustomization.parent / entry["path"]).read_text("utf-8")
        patch = yaml.safe_load(text)
        if isinstance(patch, list):
            target = entry["target"]
            for index in _targets(result, target["kind"], target.get("name")):
                result[index] = jsonpatch.apply_patch(result[index], patch)
        else:
            index = _find(result, patch["kind"], patch["metadata"]["name"])
            result[index] = _merge_webhooks(result[index], patch.get("webhooks") or ())
    return result


def _targets(documents: Sequence[Mapping[str, Any]], kind: str, name: str | None) -> list[int]:
    """The documents a JSON 6902 patch's target names (every one of the kind without a name)."""
    if name is not None:
        return [_find(documents, kind, name)]
    matched = [i for i, doc in enumerate(documents) if doc.get("kind") == kind]
    if not matched:
        raise ManifestError(f"kustomize patch for {kind}: no such document")
    return matched


def _find(documents: Sequence[Mapping[str, Any]], kind: str, name: str) -> int:
    for index, doc in enumerate(documents):
        if doc.get("kind") == kind and doc["metadata"]["name"] == name:
            return index
    raise ManifestError(f"kustomize patch for {kind}/{name}: no such document")


def _merge_webhooks(
    document: Mapping[str, Any], patches: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    by_name = {p["name"]: p for p in patches}
    hooks = [{**w, **by_name.get(w["name"], {})} for w in document["webhooks"]]
    return {**document, "webhooks": hooks}


def _by_url(webhook: Mapping[str, Any], port: int, ca_bundle: bytes) -> dict[str, Any]:
    path = webhook["clientConfig"]["service"]["path"]
    client = {
        "url": f"https://{LOOPBACK}:{port}{path}",
        "caBundle": base64.b64encode(ca_bundle).decode("ascii"),
    }
    return {**webhook, "clientConfig": client}
