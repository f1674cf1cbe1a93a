"""The filter in a real sidecar on 127.0.0.1, and its section checked by ``sidecar check``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
from sidecar.testing import FakeUpstream, running_sidecar

import sidecar_jwt as plugin
from sidecar_jwt import (
    NAME,
    REFUSED,
    TAG_HEADER,
)

SIDECAR = str(Path(sys.executable).with_name("sidecar"))


async def test_calls_through_the_sidecar_are_tagged_or_refused(fake_upstream: FakeUpstream) -> None:
    """A call with the required header reaches the upstream and comes back tagged; one without
    it gets the sidecar's 403 and never reaches the upstream."""
    config = {
        "upstreams": {"shop": {"url": fake_upstream.url}},
        "plugins": {NAME: {"tag": "checked", "require_header": "x-tenant"}},
    }
    async with running_sidecar(config, plugins=[plugin]) as s:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}") as client:
            admitted = await client.get("/shop/items?x=1", headers={"x-tenant": "acme"})
            refused = await client.get("/shop/items")
    assert (admitted.status_code, admitted.text) == (200, "ok")
    assert admitted.headers[TAG_HEADER] == "checked"
    assert (refused.status_code, refused.headers["x-sidecar-error"]) == (403, REFUSED)
    assert [r.path_qs for r in fake_upstream.requests] == ["/items?x=1"]


def test_sidecar_check_names_a_wrong_option_at_its_key_path(tmp_path: Path) -> None:
    """A misspelt option is refused by `sidecar check` with the file and key path (exit 2)."""
    path = tmp_path / "sidecar.yaml"
    config = {
        "upstreams": {"shop": {"url": "http://127.0.0.1:9"}},
        "plugins": {NAME: {"tagg": "checked"}},
    }
    path.write_text(json.dumps(config))  # a JSON document is YAML too
    done = subprocess.run(  # noqa: S603 - the sidecar installed beside this Python
        [SIDECAR, "check", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert f"{path}: plugins.{NAME}.tagg:" in done.stderr
