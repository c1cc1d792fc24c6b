"""Bounded decoding: orjson's answer when it can decode; deep subtrees cut, never a crash."""

from __future__ import annotations

import json

import orjson
import pytest

from gpupool.api.bounds import TEMPLATE_MAX_BYTES, deeper_than, shorten, template_problem
from gpupool.k8s import decoding


def nested(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def test_ordinary_documents_decode_as_orjson_decodes_them() -> None:
    text = '{"metadata":{"name":"j\\u00e9"},"n":[1,2.5,null,"x\\"]"]}'
    assert decoding.loads(text) == json.loads(text)
    assert decoding.loads(text.encode()) == orjson.loads(text)


def test_invalid_json_still_fails() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        decoding.loads(b'{"a": ')


def test_only_the_deep_subtree_is_cut() -> None:
    text = (
        '{"kind":"GPUJob","metadata":{"name":"j"},"spec":{"ok":[1,{"b":"}]{["}],'
        '"template":' + nested(1200) + "}}"
    )
    document = decoding.loads(text)
    assert document["spec"]["ok"] == [1, {"b": "}]{["}]
    mark = document[decoding.UNDECODABLE]
    assert mark.startswith("spec.template.a.a.a.a") and "(64 levels)" in mark
    assert deeper_than(document, 70) is None


def test_arrays_nested_too_deep_are_cut_too() -> None:
    text = '{"metadata":{"name":"j"},"spec":' + "[" * 1500 + "]" * 1500 + "}"
    document = decoding.loads(text)
    assert document[decoding.UNDECODABLE].startswith("spec")


def test_review_objects_are_marked_where_they_are() -> None:
    review = (
        '{"kind":"AdmissionReview","request":{"uid":"u1","object":'
        '{"metadata":{"name":"j"},"spec":{"template":' + nested(1100) + "}}}}"
    )
    document = decoding.loads(review)
    assert document["request"]["uid"] == "u1"
    assert document["request"]["object"][decoding.UNDECODABLE].startswith("spec.template")


def test_depth_is_measured_without_recursion() -> None:
    deep = orjson.loads(nested(1000))
    assert deeper_than(deep, 32, "spec.template") == "spec.template" + ".a" * 33
    assert deeper_than({"spec": {"containers": [{"name": "w"}]}}, 32) is None
    assert shorten("a.b.c.d.e.f.g.h", keep=3) == "a.b.c… (8 levels)"


def test_template_bounds_name_the_field() -> None:
    deep = orjson.loads(nested(40))
    problem = template_problem({"metadata": deep, "spec": {"containers": [{"name": "w"}]}})
    assert problem is not None and problem.startswith("spec.template.metadata.a.a")
    big = {"metadata": {"annotations": {"x": "y" * (TEMPLATE_MAX_BYTES + 1)}}, "spec": {}}
    problem = template_problem(big)
    assert problem is not None and problem.startswith("spec.template: 512 KiB")
    assert template_problem({"spec": {"containers": [{"name": "w", "image": "i"}]}}) is None


def test_the_users_field_is_named_before_the_managed_fields_mirroring_it() -> None:
    deep = nested(1100)
    text = (
        '{"metadata":{"name":"j","managedFields":[{"fieldsV1":{"f:spec":' + deep + "}}]},"
        '"spec":{"template":' + deep + "}}"
    )
    assert decoding.loads(text)[decoding.UNDECODABLE].startswith("spec.template.a")
