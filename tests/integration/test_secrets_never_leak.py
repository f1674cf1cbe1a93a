"""Secrets never leak: distinctive credentials reach the upstream and appear nowhere else."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web

from sidecar.testing import FakeUpstream, SidecarProcess

CANARY = "LEAKCANARY"
API_KEY = f"ak-{CANARY}-1111"
BEARER = f"bt-{CANARY}-2222"
PASSWORD = f"bp-{CANARY}-3333"
CLIENT_SECRET = f"cs-{CANARY}-4444"
TOKEN = f"at-{CANARY}-5555"
SIGNING = f"hs-{CANARY}-6666"
VERIFYING = f"vs-{CANARY}-7777"
ENV = {
    "LEAK_API_KEY": API_KEY,
    "LEAK_PASSWORD": PASSWORD,
    "LEAK_SIGNING": SIGNING,
    "LEAK_VERIFYING": VERIFYING,
}
#: what the secrets look like once encoded into headers: they must not leak either
DERIVED = [
    base64.b64encode(f"ledger:{PASSWORD}".encode()).decode(),
    base64.b64encode(f"shop:{CLIENT_SECRET}".encode()).decode(),
]


class IdP:
    """A token endpoint handing out distinctive tokens, that can be switched off."""

    def __init__(self) -> None:
        self.fail = False
        self.issued = 0

    async def handle(self, request: web.Request) -> web.Response:
        if self.fail:
            return web.json_response({"error": "temporarily_unavailable"}, status=503)
        self.issued += 1
        return web.json_response({"access_token": f"{TOKEN}-{self.issued}", "expires_in": 1})


async def upstream(request: web.Request) -> web.Response:
    if request.path == "/deny":
        return web.Response(status=401, text="upstream says no")
    return web.Response(text="ok")


def scenario(tmp: Path, idp_url: str, up_url: str) -> dict[str, Any]:
    (tmp / "bearer").write_text(BEARER + "\n")
    (tmp / "client-secret").write_text(CLIENT_SECRET + "\n")
    return {
        "telemetry": {"log_level": "debug"},
        "upstreams": {
            "keyed": {"url": up_url, "auth": {"type": "api_key", "key": {"env": "LEAK_API_KEY"}}},
            "queried": {
                "url": up_url,
                "auth": {"type": "api_key", "key": {"env": "LEAK_API_KEY"}, "query": "key"},
            },
            "bearer": {
                "url": up_url,
                "auth": {"type": "bearer", "token": {"file": str(tmp / "bearer")}},
            },
            "basic": {
                "url": up_url,
                "auth": {
                    "type": "basic",
                    "username": "ledger",
                    "password": {"env": "LEAK_PASSWORD"},
                },
            },
            "oauth": {
                "url": up_url,
                "auth": {
                    "type": "oauth2_client_credentials",
                    "token_url": f"{idp_url}/token",
                    "client_id": "shop",
                    "client_secret": {"file": str(tmp / "client-secret")},
                    "retry_backoff": {"base": "50ms", "max": "200ms"},
                },
            },
            "signed": {"url": up_url, "auth": {"type": "hmac", "secret": {"env": "LEAK_SIGNING"}}},
            "hooks": {"url": up_url, "verify_hmac": {"secret": {"env": "LEAK_VERIFYING"}}},
        },
    }


def check(path: Path, env: dict[str, str]) -> str:
    exe = Path(sys.executable).with_name("sidecar")
    done = subprocess.run(  # noqa: S603
        [str(exe), "check", "-c", str(path)],
        capture_output=True,
        text=True,
        env={**env},
        timeout=60,
        check=False,
    )
    return done.stdout + done.stderr


async def test_no_secret_appears_in_logs_metrics_admin_pages_errors_or_check_output(
    tmp_path: Path,
) -> None:
    """Every secret kind (env, file, OAuth client secret and token, HMAC) is sent to the
    upstream and shown nowhere else: not stderr, the access log, /config, /upstreams, /metrics,
    error bodies or `sidecar check`."""
    idp = IdP()
    seen: list[str] = []
    async with FakeUpstream(idp.handle) as token_server, FakeUpstream(upstream) as up:
        config = scenario(tmp_path, token_server.url, up.url)
        with SidecarProcess(config, env=ENV) as p:
            async with httpx.AsyncClient(timeout=10) as c:
                for path in ("/keyed/a", "/queried/b?x=1", "/bearer/c", "/basic/d", "/oauth/e"):
                    r = await c.get(p.http_url + path)
                    assert r.status_code == 200, (path, r.text)
                r = await c.post(p.http_url + "/signed/f", content=b"{}")
                assert r.status_code == 200
                # error paths: an upstream 401 (renewal and one more try), refused signatures,
                # a body too large to sign, no route
                errors = [
                    await c.get(p.http_url + "/oauth/deny"),
                    await c.post(p.http_url + "/hooks/x", content=b"{}"),
                    await c.post(
                        p.http_url + "/hooks/x",
                        content=b"{}",
                        headers={"X-Signature": "sha256=00", "X-Timestamp": "1"},
                    ),
                    await c.get(p.http_url + "/nowhere"),
                ]
                # the IdP goes down until the token expired: calls get 503
                idp.fail = True
                async with asyncio.timeout(10):
                    while True:
                        r = await c.get(p.http_url + "/oauth/g")
                        if r.status_code == 503:
                            errors.append(r)
                            break
                        await asyncio.sleep(0.05)
                assert errors[-1].headers["x-sidecar-error"] == "credentials_unavailable"
                assert [e.status_code for e in errors[:4]] == [401, 401, 401, 404]
                seen += [e.text + json.dumps(dict(e.headers)) for e in errors]
                # a reload logs what it changed
                p.send(signal.SIGHUP)
                async with asyncio.timeout(10):
                    while not any(x.get("msg") == "config reloaded" for x in p.log_lines()):
                        await asyncio.sleep(0.05)
                for page in (
                    "/config",
                    "/upstreams",
                    "/metrics",
                    "/plugins",
                    "/readyz",
                    "/dashboard/data",
                ):
                    r = await c.get(p.admin_url + page)
                    assert r.status_code == 200
                    seen.append(r.text)
                view = (await c.get(p.admin_url + "/config")).json()
            assert p.terminate() == 0
            logs = p.log_path.read_text() + p.stdout_path.read_text()
        seen.append(check(p.config_path, {**os.environ, **ENV}))
        inline = dict(config)
        inline["upstreams"] = {
            "x": {"url": up.url, "auth": {"type": "bearer", "token": f"inline-{CANARY}"}}
        }
        bad = tmp_path / "inline.yaml"
        bad.write_text(yaml.safe_dump(inline))
        refused = check(bad, {**os.environ, **ENV})
        assert "never inline" in refused
        seen.append(refused)

    # the upstream did get every credential
    got = [{k.lower(): v for k, v in r.raw_headers} for r in up.requests]
    paths = [r.path_qs for r in up.requests]
    assert got[0]["x-api-key"] == API_KEY
    assert paths[1] == f"/b?x=1&key={API_KEY}"
    assert got[2]["authorization"] == f"Bearer {BEARER}"
    assert got[3]["authorization"] == "Basic " + DERIVED[0]
    assert got[4]["authorization"].startswith(f"Bearer {TOKEN}-")
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", got[5]["x-signature"])
    # the config is shown by reference only
    assert view["upstreams"]["oauth"]["auth"]["client_secret"] == {
        "file": str(tmp_path / "client-secret")
    }
    # and nothing else shows any of it
    assert CANARY in json.dumps(ENV)  # the check below could not pass on empty values
    lines = logs.splitlines()
    assert any('"path": "/e"' in line for line in lines)  # the access log was written
    assert any("token fetch failed" in line for line in lines)  # and the IdP outage logged
    for text in [*seen, logs]:
        assert CANARY not in text
        for derived in DERIVED:
            assert derived not in text
