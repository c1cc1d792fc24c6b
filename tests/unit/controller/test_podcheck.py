"""The worker pod's dry run: refusals under the GPUJob's field names, one per job shape."""

from __future__ import annotations

import asyncio

import pytest

from gpupool.api import GPUJobSpec
from gpupool.controller.podcheck import (
    DryRuns,
    describe_refusal,
    refused_for_good,
    shape_of,
    template_field,
)
from gpupool.k8s import ApiError


def spec(image: str = "train:1") -> GPUJobSpec:
    return GPUJobSpec.model_validate(
        {
            "gpusPerWorker": 1,
            "workers": 1,
            "template": {"spec": {"containers": [{"name": "t", "image": image}]}},
        }
    )


def test_a_refusal_names_the_gpujob_fields() -> None:
    error = ApiError(
        422,
        "Invalid",
        'Pod "j-0-0" is invalid: ...',
        {
            "details": {
                "causes": [
                    {"field": "metadata.annotations", "message": "Too long: may not be more"},
                    {"field": "spec.containers[0].name", "message": 'Invalid value: "A_b"'},
                ]
            }
        },
    )
    assert describe_refusal(error) == (
        "Invalid: spec.template.metadata.annotations: Too long: may not be more; "
        'spec.template.spec.containers[0].name: Invalid value: "A_b"'
    )
    assert describe_refusal(ApiError(413, "", "request entity too large")) == (
        "413: request entity too large"
    )
    assert template_field("") == "spec.template"


@pytest.mark.parametrize(
    ("status", "final"), [(400, True), (413, True), (422, True), (403, False), (500, False)]
)
def test_only_refusals_that_cannot_change_are_final(status: int, final: bool) -> None:
    assert refused_for_good(ApiError(status, "", "")) is final


def test_the_shape_is_namespace_team_and_spec() -> None:
    assert shape_of("a", "t", spec()) == shape_of("a", "t", spec())
    assert shape_of("a", "t", spec()) != shape_of("b", "t", spec())
    assert shape_of("a", "t", spec()) != shape_of("a", "u", spec())
    assert shape_of("a", "t", spec()) != shape_of("a", "t", spec("train:2"))


async def test_jobs_of_one_shape_share_one_dry_run_for_a_while() -> None:
    now = [0.0]
    runs = DryRuns(lambda: now[0], ttl_seconds=60)
    asked = []

    async def ask() -> str | None:
        asked.append(1)
        await asyncio.sleep(0.01)
        return "Invalid: spec.template.spec.containers[0].image: Required value"

    answers = await asyncio.gather(*(runs.answer(b"shape", ask) for _ in range(50)))
    assert len(asked) == 1 and set(answers) == {answers[0]}
    now[0] = 30.0
    await runs.answer(b"shape", ask)
    assert len(asked) == 1
    now[0] = 61.0
    await runs.answer(b"shape", ask)
    assert len(asked) == 2


async def test_an_answer_that_is_not_final_is_not_kept() -> None:
    runs = DryRuns(lambda: 0.0)
    calls = []

    async def unavailable() -> str | None:
        calls.append(1)
        await asyncio.sleep(0.01)
        raise ApiError(503, "ServiceUnavailable", "etcd")

    results = await asyncio.gather(
        *(runs.answer(b"s", unavailable) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, ApiError) for result in results)
    assert len(calls) == 1
    with pytest.raises(ApiError):
        await runs.answer(b"s", unavailable)
    assert len(calls) == 2
