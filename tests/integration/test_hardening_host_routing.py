"""An upstream named `localhost` cannot capture the app's calls; loopback Hosts path-route.

Routing by `Host` runs before routing by path, and an app calling
`http://127.0.0.1:15001/payments/` sends `Host: 127.0.0.1:15001`: an upstream named `127.0.0.1`
would get every call. Such a config is refused by `check` and `run` alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sidecar.testing import running_sidecar

SIDECAR = str(Path(sys.executable).with_name("sidecar"))

ATTACK = """\
admin: {address: "127.0.0.1:0"}
http: {address: "127.0.0.1:0"}
grpc: {address: "127.0.0.1:0"}
upstreams:
  payments: {adapter: echo}
  localhost: {url: "http://127.0.0.1:9"}
"""


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_config_with_an_upstream_named_localhost_is_refused(tmp_path: Path, command: str) -> None:
    """`check` and `run` refuse it with its key path: it would have taken every call."""
    (tmp_path / "sidecar.yaml").write_text(ATTACK)
    r = subprocess.run(  # noqa: S603
        [SIDECAR, command, "-c", "sidecar.yaml"],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.splitlines() == [
        'sidecar.yaml: upstreams.localhost: "localhost" is how the app reaches the sidecar '
        "itself: Host routing would send every call made through that name to this upstream; "
        "name it after its service (its url may still point there)"
    ]


async def test_calls_through_every_loopback_host_still_route_by_path() -> None:
    """`Host: 127.0.0.1:15001` (or localhost, [::1], 0.0.0.0) reaches /payments/ by its path."""
    config = {"upstreams": {"payments": {"adapter": "echo"}, "ledger": {"adapter": "echo"}}}
    async with running_sidecar(config) as sidecar:
        port = sidecar.http_port
        url = f"http://127.0.0.1:{port}/payments/x"
        hosts = [f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", f"[::1]:{port}"]
        hosts += [f"0.0.0.0:{port}", "ip6-localhost"]  # noqa: S104 - a Host value, not a bind
        async with httpx.AsyncClient(timeout=10) as client:
            for host in hosts:
                r = await client.get(url, headers={"host": host})
                assert r.status_code == 200, (host, r.text)
                doc = json.loads(r.text)
                assert (doc["upstream"], doc["path"]) == ("payments", "/x"), host
            # Host routing itself still works for an upstream's own name
            r = await client.get(f"http://127.0.0.1:{port}/y", headers={"host": "ledger"})
            assert json.loads(r.text)["upstream"] == "ledger"
