"""The demo's manifests are valid resources, and its board renders what the cluster says."""

from __future__ import annotations

from rich.console import Console

from gpupool.api.gpujob import GPUJob
from gpupool.api.teamquota import TeamQuota
from gpupool.demo.board import Board
from gpupool.demo.scenario import CHAT, RESEARCH_JOBS, RESNET, TEAMS


def test_every_manifest_of_the_story_is_a_valid_resource() -> None:
    for team in TEAMS:
        TeamQuota.model_validate(team.manifest())
    for job in (*RESEARCH_JOBS, CHAT, RESNET):
        parsed = GPUJob.model_validate(job.manifest())
        assert parsed.spec.checkpoint is not None and parsed.spec.checkpoint.mode == "signal"
    namespaces = [ns for team in TEAMS for ns in team.manifest()["spec"]["namespaces"]]
    assert len(set(namespaces)) == len(namespaces), "a namespace claimed by two teams"


def test_the_board_shows_teams_jobs_and_the_story() -> None:
    board = Board()
    board.teams = [
        {
            "metadata": {"name": "research"},
            "spec": {"guaranteedGPUs": 8, "maxGPUs": 32},
            "status": {"allocatedGPUs": 24, "borrowedGPUs": 16, "fairShareGPUs": 24},
        }
    ]
    board.jobs = [
        {
            "metadata": {"name": "train-2", "namespace": "research-jobs"},
            "status": {
                "phase": "Pending",
                "team": "research",
                "shape": "1×8",
                "preemptions": 1,
                "detail": "queued behind 1 waiting job",
                "lastCheckpoint": {"location": "s3://ckpt/research/train-2/latest"},
            },
        }
    ]
    board.say("train-2 requeued: ReclaimBorrowed")
    console = Console(width=160, record=True)
    console.print(board.render())
    text = console.export_text()
    for expected in ("research", "16", "train-2", "Pending", "train-2/latest", "ReclaimBorrowed"):
        assert expected in text
