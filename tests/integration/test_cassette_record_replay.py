"""Record an upstream's calls through a real sidecar, then replay them with the upstream gone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from sidecar.testing import FakeUpstream, cassette, replaying_sidecar, running_sidecar

SECRET_KEY = "ak-secret-4711"
SECRET_HEADER = "hdr-secret-0815"


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERS_API_KEY", SECRET_KEY)
    monkeypatch.setenv("USERS_TENANT", SECRET_HEADER)


async def users(request: web.Request) -> web.StreamResponse:
    """A small users API: JSON per id, a binary avatar, a cookie, a streamed list."""
    if request.path == "/avatar":
        return web.Response(body=b"\x89PNG\x00\xff", content_type="image/png")
    if request.path == "/stream":
        resp = web.StreamResponse(headers={"content-type": "text/plain"})
        await resp.prepare(request)
        for part in (b"one,", b"two,", b"three"):
            await resp.write(part)
        await resp.write_eof()
        return resp
    body = {"id": request.path.rsplit("/", 1)[-1], "seen": request.query.get("v", "")}
    if request.method == "POST":
        body["posted"] = await request.json()
    resp = web.json_response(body)
    resp.set_cookie("session", "cookie-secret-1")
    return resp


@pytest.fixture
async def up() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(users) as server:
        yield server


def recording(url: str, path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "upstreams": {
            "users": {
                "url": url,
                "auth": {"type": "api_key", "key": {"env": "USERS_API_KEY"}},
                "request_headers": {"x-tenant": {"env": "USERS_TENANT"}, "x-plain": "shown"},
                "cassette": {
                    "mode": "record",
                    "path": str(path),
                    "redact_headers": ["x-app-token"],
                    **extra,
                },
            }
        }
    }


async def test_recorded_calls_replay_without_the_upstream_and_no_secret_is_written(
    up: FakeUpstream, tmp_path: Path
) -> None:
    """Calls recorded through the sidecar come back identical from replay; secrets are redacted."""
    tape = tmp_path / "users.jsonl"
    calls = [
        ("GET", "/users/users/1?v=a", None),
        ("POST", "/users/users/2", {"name": "Ada"}),
        ("GET", "/users/avatar", None),
        ("GET", "/users/stream", None),
    ]
    answers = []
    async with running_sidecar(recording(up.url, tape)) as s, httpx.AsyncClient() as c:
        base = f"http://127.0.0.1:{s.http_port}"
        for method, target, payload in calls:
            r = await c.request(
                method,
                base + target,
                json=payload,
                headers={"x-app-token": "app-secret-9", "cookie": "a=b"},
            )
            answers.append((r.status_code, r.content))
    assert len(up.requests) == 4
    assert up.requests[0].headers["x-api-key"] == SECRET_KEY  # forwarded as usual
    text = tape.read_text()
    for secret in (SECRET_KEY, SECRET_HEADER, "app-secret-9", "cookie-secret-1", "a=b"):
        assert secret not in text
    tape_ = cassette(tape)
    first = tape_.interactions[0]
    assert first.request_header("x-api-key") == "<redacted>"
    assert first.request_header("x-tenant") == "<redacted>"
    assert first.request_header("x-plain") == "shown"  # a value from the file is no secret
    assert first.response_header("set-cookie") == "<redacted>"
    assert tape_.interactions[2].response_body == b"\x89PNG\x00\xff"
    assert '"body_base64"' in text.splitlines()[2]
    assert tape_.interactions[3].response_body == b"one,two,three"
    assert all(i.duration_ms >= 0 for i in tape_.interactions)

    await up.stop()  # replay must not need it
    async with replaying_sidecar("users", tape) as s, httpx.AsyncClient() as c:
        base = f"http://127.0.0.1:{s.http_port}"
        for (method, target, payload), (status, content) in zip(calls, answers, strict=True):
            r = await c.request(method, base + target, json=payload)
            assert (r.status_code, r.content) == (status, content)


async def test_an_unmatched_call_answers_501_naming_the_closest_recorded_request(
    tmp_path: Path,
) -> None:
    """A call the cassette lacks gets 501 cassette_no_match saying what differed."""
    tape = tmp_path / "t.jsonl"
    tape.write_text(
        json.dumps(
            {
                "request": {"method": "GET", "path": "/users/1", "query": "v=a", "headers": []},
                "response": {"status": 200, "headers": [], "body": "one"},
            }
        )
        + "\n"
    )
    async with replaying_sidecar("users", tape) as s, httpx.AsyncClient() as c:
        r = await c.get(f"http://127.0.0.1:{s.http_port}/users/users/1?v=b")
        assert r.status_code == 501
        assert r.headers["x-sidecar-error"] == "cassette_no_match"
        assert "closest: GET /users/1?v=a" in r.text
        assert "query parameter 'v' differs" in r.text
        # no breaker opens and no retry repeats it: the sixth call is answered the same way
        for _ in range(6):
            r = await c.get(f"http://127.0.0.1:{s.http_port}/users/users/9")
            assert r.headers["x-sidecar-error"] == "cassette_no_match"
            assert "path differs" in r.text


async def test_a_full_cassette_refuses_the_call_before_it_reaches_the_upstream(
    up: FakeUpstream, tmp_path: Path
) -> None:
    """Past max_size the call gets 507 cassette_full and the upstream is not called."""
    tape = tmp_path / "full.jsonl"
    tape.write_bytes(b"x" * 2048)
    async with running_sidecar(recording(up.url, tape, max_size=1024)) as s:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"http://127.0.0.1:{s.http_port}/users/users/1")
    assert r.status_code == 507
    assert r.headers["x-sidecar-error"] == "cassette_full"
    assert "max_size" in r.text
    assert up.requests == []


def test_sidecar_check_names_an_unusable_cassette_at_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A replay file that is missing, or a cassette on a gRPC upstream, stops check (exit 2)."""
    from sidecar.cli import main

    config = tmp_path / "sidecar.yaml"
    missing = tmp_path / "missing.jsonl"
    ups = {
        "users": {
            "url": "http://127.0.0.1:9",
            "cassette": {"mode": "replay", "path": str(missing)},
        },
        "inventory": {
            "adapter": "grpc",
            "url": "grpc://127.0.0.1:9",
            "services": ["inventory.v1.Inventory"],
            "cassette": {"mode": "record", "path": str(tmp_path / "g.jsonl")},
        },
    }
    config.write_text(json.dumps({"upstreams": {"users": ups["users"]}}))
    assert main(["check", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "upstreams.users.cassette.path: cassette" in err and "cannot be read" in err
    config.write_text(json.dumps({"upstreams": {"inventory": ups["inventory"]}}))
    assert main(["check", "-c", str(config)]) == 2
    assert "upstreams.inventory.cassette: a cassette records HTTP calls" in capsys.readouterr().err
