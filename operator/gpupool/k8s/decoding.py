"""Bounded JSON decoding of what the API server sends: no object can stop a watch.

orjson refuses documents nested deeper than 1,024 levels ("depth limit exceeded"), and the
standard library recurses until Python's own limit. A CRD field that preserves unknown
fields let one user store such an object; every watch and every listing of its kind then
failed, and kopf's watcher with it, on every restart.

`loads` takes orjson's fast path. Only when that fails does it look for subtrees nested
deeper than `MAX_DEPTH`: each is replaced by the string `TOO_DEEP`, the document decodes,
and every Kubernetes object in it that lost a subtree is marked with `UNDECODABLE`
(a top-level key no API object has) naming the first field cut. Consumers skip marked
objects with a clear reason instead of failing on them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

MAX_DEPTH = 64
TOO_DEEP = "\x00gpupool: nested too deep"
UNDECODABLE = "gpupool.io/undecodable"

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")


def loads(data: bytes | str) -> Any:
    """Decode JSON; subtrees deeper than `MAX_DEPTH` are cut (see the module docstring)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raw = data.encode() if isinstance(data, str) else data
        pruned = prune(raw, MAX_DEPTH)
        if pruned is None:
            raise
    document = orjson.loads(pruned)
    for obj in _objects(document):
        where = first_cut(obj)
        if where is not None:
            obj[UNDECODABLE] = f"{shorten(where)}: nested deeper than {MAX_DEPTH} levels"
    return document


def prune(data: bytes, limit: int) -> bytes | None:
    """`data` with every array or object below depth `limit` replaced; None: nothing cut."""
    pieces: list[bytes] = []
    depth = 0
    cut_from: int | None = None
    kept = 0
    sentinel = orjson.dumps(TOO_DEEP)
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token[0] == ord('"'):
            continue
        if token[0] in _OPEN:
            depth += 1
            if depth > limit and cut_from is None:
                cut_from = match.start()
        else:
            depth -= 1
            if cut_from is not None and depth == limit:
                pieces.append(data[kept:cut_from])
                pieces.append(sentinel)
                kept = match.end()
                cut_from = None
    if not pieces:
        return None
    pieces.append(data[kept:])
    return b"".join(pieces)


def _objects(document: Any) -> Iterator[dict[str, Any]]:
    """The API objects a reply carries: itself, a watch event's, a list's, a review's."""
    if not isinstance(document, dict):
        return
    yield document
    for key in ("object", "oldObject"):
        if isinstance(document.get(key), dict):
            yield document[key]
    request = document.get("request")
    if isinstance(request, dict):
        yield from _objects(request)
    for item in document.get("items") or ():
        if isinstance(item, dict):
            yield item


def first_cut(obj: Any, path: str = "") -> str | None:
    """The dotted path of the first `TOO_DEEP` marker inside `obj` (bounded by the cut)."""
    if obj == TOO_DEEP:
        return path or "."
    if isinstance(obj, Mapping):
        items = list(obj.items())
        if not path:
            # What the user wrote first: `metadata.managedFields` mirrors every field's
            # path, so a deep spec is deep there too.
            items.sort(key=lambda item: item[0] == "metadata")
        for key, value in items:
            if key in ("object", "oldObject", "items", "request") and not path:
                continue
            found = first_cut(value, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            found = first_cut(value, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def deeper_than(obj: Any, limit: int, path: str = "") -> str | None:
    """The path of the first value nested more than `limit` levels below `obj`; None if not.

    Iterative, so an object as deep as orjson allows cannot exhaust Python's stack.
    """
    stack: list[tuple[Any, str, int]] = [(obj, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > limit:
            return where
        if isinstance(node, Mapping):
            items = [
                (f"{where}.{key}" if where else str(key), value) for key, value in node.items()
            ]
        elif isinstance(node, list):
            items = [(f"{where}[{index}]", value) for index, value in enumerate(node)]
        else:
            continue
        stack.extend((value, name, depth + 1) for name, value in reversed(items))
    return None


def shorten(path: str, keep: int = 6) -> str:
    """A long field path cut to its first `keep` segments (a 1,000-level path helps nobody)."""
    parts = path.split(".")
    if len(parts) <= keep:
        return path
    return ".".join(parts[:keep]) + f"… ({len(parts)} levels)"
