"""kopf logs in with gpupool's credentials."""

from __future__ import annotations

import base64
from pathlib import Path

import kopf
import pytest
import yaml

from gpupool.controller.login import connection_info


def write_kubeconfig(path: Path, cluster: dict[str, object], user: dict[str, object]) -> str:
    document = {
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "ns"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


async def test_data_fields_and_a_token_reach_kopf(tmp_path: Path) -> None:
    data = base64.b64encode(b"PEM").decode()
    kubeconfig = write_kubeconfig(
        tmp_path / "config",
        {"server": "https://h:6443", "certificate-authority-data": data},
        {"client-certificate-data": data, "client-key-data": data, "token": "t"},
    )
    info = await connection_info(kubeconfig)
    assert info.server == "https://h:6443"
    # The kubernetes package's loader writes data fields to private files.
    files = (info.ca_path, info.certificate_path, info.private_key_path)
    assert [Path(str(f)).read_bytes() for f in files] == [b"PEM"] * 3
    assert (info.scheme, info.token, info.default_namespace) == ("Bearer", "t", "ns")
    assert (info.expiration, info.proxy_url) == (None, None)


async def test_a_token_file_expires_so_kopf_reads_it_again(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("rotating")
    (tmp_path / "ca.crt").write_text("CA")
    kubeconfig = write_kubeconfig(
        tmp_path / "config",
        {"server": "https://h:6443", "certificate-authority": "ca.crt"},
        {"tokenFile": "token"},
    )
    info = await connection_info(kubeconfig)
    assert info.ca_path == tmp_path / "ca.crt"
    assert info.token == "rotating"
    assert info.expiration is not None


async def test_a_proxy_reaches_kopf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    kubeconfig = write_kubeconfig(
        tmp_path / "config",
        {
            "server": "https://h:6443",
            "insecure-skip-tls-verify": True,
            "proxy-url": "http://p:3128",
        },
        {"token": "t"},
    )
    assert (await connection_info(kubeconfig)).proxy_url == "http://p:3128"


async def test_what_kopf_cannot_do_is_a_login_error(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(
        tmp_path / "config",
        {"server": "https://h:6443", "insecure-skip-tls-verify": True},
        {"token": "t", "as": "jane"},
    )
    with pytest.raises(kopf.LoginError, match="kopf does not support impersonation"):
        await connection_info(kubeconfig)


async def test_credential_errors_are_login_errors(tmp_path: Path) -> None:
    with pytest.raises(kopf.LoginError, match="absent"):
        await connection_info(str(tmp_path / "absent"))
