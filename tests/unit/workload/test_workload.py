"""The workload helper: SIGTERM -> save once -> termination message -> exit; the endpoint."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gpupool
from gpupool.api import CheckpointHook
from gpupool.controller.checkpoint import request_checkpoint
from gpupool.controller.termination import parse_termination_message
from gpupool.workload import (
    Checkpointer,
    Worker,
    checkpoint_endpoint,
    checkpoint_mode,
    checkpoint_timeout,
    report,
    restart_count,
    resume_from,
    serve_checkpoint_endpoint,
    worker,
)

SOURCE_ROOT = str(Path(gpupool.__file__).resolve().parents[1])


def python(code: str, log: Path, **env: str) -> subprocess.Popen[str]:
    """A child Python with only the stdlib and the package source (`-S`: no site-packages)."""
    return subprocess.Popen(
        [sys.executable, "-S", "-u", "-c", textwrap.dedent(code)],
        env={
            "PYTHONPATH": SOURCE_ROOT,
            "GPUPOOL_TERMINATION_LOG": str(log),
            "PATH": os.environ.get("PATH", ""),
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "ready", child.stderr.read() if child.stderr else line


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=5)


def test_importable_with_the_standard_library_only(tmp_path: Path) -> None:
    child = python(
        """
        import sys
        import gpupool.workload
        third_party = {"pydantic", "kopf", "kubernetes", "aiohttp", "yaml", "torch"}
        print(sorted(third_party & set(sys.modules)))
        """,
        tmp_path / "log",
    )
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert out.strip() == "[]"


IMMEDIATE = """
    import time
    from gpupool.workload import Checkpointer

    def save():
        print("saving", flush=True)
        time.sleep(0.3)
        return "/ckpt/step-42"

    Checkpointer(save).install()
    print("ready", flush=True)
    for _ in range(300):
        time.sleep(0.05)
    print("never signalled", flush=True)
"""


def test_sigterm_saves_once_writes_the_message_and_exits(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    log = tmp_path / "termination-log"
    child = python(IMMEDIATE, log)
    children.append(child)
    wait_ready(child)
    child.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    # A second SIGTERM during the save must not start another one.
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=20)
    assert child.returncode == 143, err
    assert out.count("saving") == 1
    assert "never signalled" not in out
    assert json.loads(log.read_text()) == {"checkpoint": "/ckpt/step-42"}
    assert parse_termination_message(log.read_text()) == "/ckpt/step-42"


def test_deferred_mode_saves_at_the_step_boundary(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    log = tmp_path / "termination-log"
    child = python(
        """
        import time
        from gpupool.workload import Checkpointer

        step = 0
        checkpointer = Checkpointer(lambda: f"/ckpt/step-{step}", defer=True).install()
        print("ready", flush=True)
        for step in range(1, 3000):
            time.sleep(0.01)        # a training step the signal must not cut in half
            checkpointer.poll()
        """,
        log,
    )
    children.append(child)
    wait_ready(child)
    time.sleep(0.2)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=20)
    assert child.returncode == 143, err
    location = parse_termination_message(log.read_text())
    assert location is not None and location.startswith("/ckpt/step-")


def test_a_failing_save_keeps_the_last_reported_checkpoint(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    log = tmp_path / "termination-log"
    child = python(
        """
        import time
        from gpupool.workload import Checkpointer

        def save():
            raise OSError("bucket unreachable")

        checkpointer = Checkpointer(save).install()
        checkpointer.report("/ckpt/periodic-7")
        print("ready", flush=True)
        time.sleep(15)
        """,
        log,
    )
    children.append(child)
    wait_ready(child)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=20)
    assert child.returncode == 143
    assert "bucket unreachable" in err
    assert parse_termination_message(log.read_text()) == "/ckpt/periodic-7"


def test_report_writes_json_and_rejects_what_cannot_fit(tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert report(" s3://b/step-1 ", str(log)) is True
    assert json.loads(log.read_text()) == {"checkpoint": "s3://b/step-1"}
    assert report("s3://b/step-2", str(log)) is True
    assert json.loads(log.read_text()) == {"checkpoint": "s3://b/step-2"}
    with pytest.raises(ValueError, match="empty"):
        report("  ", str(log))
    with pytest.raises(ValueError, match="too long"):
        report("/" + "x" * 5000, str(log))


def test_report_outside_kubernetes_warns_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-dir" / "log"
    assert report("/ckpt/a", str(missing)) is False
    assert report("/ckpt/b", str(missing)) is False
    assert capsys.readouterr().err.count("cannot write checkpoint") == 1


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GPUPOOL_"):
            monkeypatch.delenv(name)
    assert resume_from() is None
    assert restart_count() == 0
    assert checkpoint_mode() is None
    assert checkpoint_timeout() is None
    assert checkpoint_endpoint() is None
    monkeypatch.setenv("GPUPOOL_RESUME_FROM", "s3://b/step-9")
    monkeypatch.setenv("GPUPOOL_RESTART_COUNT", "3")
    monkeypatch.setenv("GPUPOOL_CHECKPOINT_MODE", "httpPost")
    monkeypatch.setenv("GPUPOOL_CHECKPOINT_TIMEOUT", "90")
    monkeypatch.setenv("GPUPOOL_CHECKPOINT_PORT", "8080")
    assert resume_from() == "s3://b/step-9"
    assert restart_count() == 3
    assert checkpoint_timeout() == 90
    assert checkpoint_endpoint() == (8080, "/checkpoint")
    monkeypatch.setenv("GPUPOOL_RESTART_COUNT", "junk")
    assert restart_count() == 0


def post(url: str, body: bytes = b"{}") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("GPUPOOL_TERMINATION_LOG", str(path))
    return path


def test_http_endpoint_answers_and_reports(log: Path) -> None:
    saves: list[int] = []

    def save() -> str:
        saves.append(1)
        return f"/ckpt/http-{len(saves)}"

    endpoint = serve_checkpoint_endpoint(0, "/checkpoint", save, host="127.0.0.1")
    try:
        base = f"http://127.0.0.1:{endpoint.port}"
        assert post(f"{base}/checkpoint") == (200, {"checkpoint": "/ckpt/http-1"})
        assert parse_termination_message(log.read_text()) == "/ckpt/http-1"
        assert post(f"{base}/elsewhere")[0] == 404
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{base}/checkpoint", timeout=5)
        assert caught.value.code == 405
        assert len(saves) == 1
    finally:
        endpoint.close()


def test_http_endpoint_reports_a_failing_save(log: Path) -> None:
    def save() -> str:
        raise RuntimeError("disk full")

    endpoint = serve_checkpoint_endpoint(0, "/checkpoint", save, host="127.0.0.1")
    try:
        status, body = post(f"http://127.0.0.1:{endpoint.port}/checkpoint")
        assert status == 500
        assert "disk full" in body["error"]
    finally:
        endpoint.close()


def test_deferred_request_is_served_by_the_training_loop(log: Path) -> None:
    step = {"n": 0}
    checkpointer = Checkpointer(lambda: f"/ckpt/step-{step['n']}", defer=True)
    answers: list[str] = []
    asker = threading.Thread(target=lambda: answers.append(checkpointer.request(timeout=5)))
    asker.start()
    for n in range(500):
        step["n"] = n
        if checkpointer.save_requested:
            checkpointer.poll()
            break
        time.sleep(0.01)
    asker.join(timeout=5)
    assert answers == [f"/ckpt/step-{step['n']}"]
    assert parse_termination_message(log.read_text()) == answers[0]
    with pytest.raises(TimeoutError):
        checkpointer.request(timeout=0.05)
    assert not checkpointer.save_requested


async def test_gpupool_http_hook_against_the_helper_endpoint(log: Path) -> None:
    """Both halves of the httpPost protocol: gpupool's POST, the helper's reply."""

    class Pods:
        """Only the verb the httpPost mode uses."""

        def __init__(self) -> None:
            self.deleted: list[str] = []

        async def delete(self, resource: Any, name: str, namespace: Any = None, **_: Any) -> None:
            self.deleted.append(name)

    endpoint = serve_checkpoint_endpoint(0, "/save", lambda: "gs://b/run/7", host="127.0.0.1")
    try:
        pod = {"metadata": {"name": "job-0-0", "uid": "u"}, "status": {"podIP": "127.0.0.1"}}
        hook = CheckpointHook.model_validate(
            {
                "mode": "httpPost",
                "timeoutSeconds": 5,
                "httpPost": {"port": endpoint.port, "path": "/save"},
            }
        )
        pods = Pods()
        outcome = await request_checkpoint(
            pods,
            namespace="ns",
            job_name="job",
            pods=[pod],
            hook=hook,
            now=time.monotonic,
        )
    finally:
        endpoint.close()
    assert (outcome.outcome, outcome.location, outcome.source) == (
        "succeeded",
        "gs://b/run/7",
        "hook",
    )
    assert pods.deleted == ["job-0-0"]


def test_worker_reads_the_place_gpupool_gave_the_pod() -> None:
    env = {
        "WORLD_SIZE": "3",
        "RANK": "2",
        "MASTER_ADDR": "e-4-0.e.vision.svc",
        "MASTER_PORT": "29400",
        "GPUPOOL_INCARNATION": "4",
    }
    assert worker(env) == Worker(
        rank=2, world_size=3, master_addr="e-4-0.e.vision.svc", master_port=29400, incarnation=4
    )
    assert worker({"WORLD_SIZE": "1", "RANK": "0", "MASTER_ADDR": "localhost"}).master_port == 29500


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"RANK": "0", "MASTER_ADDR": "m"}, "WORLD_SIZE=None"),
        ({"WORLD_SIZE": "two", "RANK": "0", "MASTER_ADDR": "m"}, "WORLD_SIZE='two'"),
        ({"WORLD_SIZE": "0", "RANK": "0", "MASTER_ADDR": "m"}, "at least 1"),
        ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "m"}, "RANK=2 is not one of the 2"),
        ({"WORLD_SIZE": "2", "RANK": "-1", "MASTER_ADDR": "m"}, "RANK=-1"),
        ({"WORLD_SIZE": "2", "RANK": "1"}, "MASTER_ADDR is not set"),
    ],
)
def test_worker_refuses_an_inconsistent_environment(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        worker(env)


def test_report_prints_the_line_the_node_agent_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert report("s3://b/step-3", str(tmp_path / "log"))
    assert capsys.readouterr().err == 'gpupool.io/checkpoint {"checkpoint": "s3://b/step-3"}\n'
    assert report("s3://b/step-4", str(tmp_path / "log"), log=False)
    assert capsys.readouterr().err == ""
