"""The provider in a real sidecar on 127.0.0.1, and its settings checked by ``sidecar check``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sidecar.testing import FakeUpstream, running_sidecar

import sidecar_aws_sigv4 as plugin
from sidecar_aws_sigv4 import (
    DEFAULT_HEADER,
    NAME,
)

SIDECAR = str(Path(sys.executable).with_name("sidecar"))
#: the environment variable the tests' token is read from
ENV = "AWS_SIGV4_TOKEN"


async def test_the_upstream_gets_the_token_and_the_app_never_sent_it(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call through the sidecar reaches the upstream with the secret in the header, in place
    of the app's value."""
    monkeypatch.setenv(ENV, "s3cr3t-token")
    auth = {"type": NAME, "token": {"env": ENV}}
    config = {"upstreams": {"shop": {"url": fake_upstream.url, "auth": auth}}}
    async with running_sidecar(config, plugins=[plugin]) as s:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}") as client:
            r = await client.get("/shop/items", headers={DEFAULT_HEADER: "the app's own"})
    assert r.status_code == 200
    [seen] = fake_upstream.requests
    sent = [v for k, v in seen.raw_headers if k.lower() == DEFAULT_HEADER]
    assert sent == ["s3cr3t-token"]


def test_sidecar_check_names_a_wrong_setting_at_its_key_path(tmp_path: Path) -> None:
    """A misspelt setting is refused by `sidecar check` with the file and key path (exit 2)."""
    path = tmp_path / "sidecar.yaml"
    auth = {"type": NAME, "tokn": {"env": ENV}}
    config = {"upstreams": {"shop": {"url": "http://127.0.0.1:9", "auth": auth}}}
    path.write_text(json.dumps(config))  # a JSON document is YAML too
    done = subprocess.run(  # noqa: S603 - the sidecar installed beside this Python
        [SIDECAR, "check", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert f"{path}: upstreams.shop.auth.tokn:" in done.stderr
