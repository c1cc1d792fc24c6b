"""The command line's own surface: its name as a kubectl plugin, --version, the groups in
--help, and what an unforeseen failure prints."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gpupool import __version__, cli


def test_it_presents_itself_as_kubectl_gpupool_when_run_as_the_plugin() -> None:
    assert cli.program_name("/usr/local/bin/kubectl-gpupool") == "kubectl gpupool"
    assert cli.program_name("/usr/local/bin/gpupool") == "gpupool"
    shown = CliRunner().invoke(cli.app, ["--help"], prog_name="kubectl gpupool")
    assert "Usage: kubectl gpupool" in shown.output


def test_version() -> None:
    result = CliRunner().invoke(cli.app, ["--version"])
    assert result.exit_code == 0 and result.output == f"gpupool {__version__}\n"


def test_admin_commands_are_listed_apart_from_the_users() -> None:
    text = CliRunner().invoke(cli.app, ["--help"], env={"COLUMNS": "200"}).output
    user, admin = text.index("Reading the cluster"), text.index("Admin commands")
    for command in ("status", "queue", "top", "explain", "snapshot"):
        assert user < text.index(f" {command} ") < admin, command
    for command in ("operator", "agent", "bench", "crds", "demo"):
        assert text.index(f" {command} ", admin) > admin, command


@pytest.mark.parametrize("verbose", [False, True])
def test_an_unforeseen_failure_is_one_line_unless_verbose(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], verbose: bool
) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "app", lambda **_: broken())
    monkeypatch.setattr("sys.argv", ["gpupool", "status", *(["-v"] if verbose else [])])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "RuntimeError: boom" in err
    assert ("Traceback" in err) == verbose
    assert ("bug in gpupool" in err) != verbose
