"""`sidecar contract verify` against a real provider, checked against pact-python's own verifier.

The consumer pact is written with pact-python's DSL (its Rust core serves the mock and writes
the file); our verifier sends each interaction through a running sidecar (which injects the
provider's API key) and pact-python's verifier calls the provider itself: on a provider that
keeps the contract both pass, on one that breaks it both fail.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pact  # pact-python, in the test extra
import pytest
import yaml
from aiohttp import web

from sidecar.cli import main
from sidecar.testing import FakeUpstream

API_KEY = "provider-key-1"


class Provider:
    """A users API that needs X-API-Key, with a provider-state endpoint; ``broken`` breaks it."""

    def __init__(self) -> None:
        self.users: dict[int, dict[str, Any]] = {}
        self.states: list[dict[str, Any]] = []
        self.broken = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/_pact/state":
            doc = await request.json()
            self.states.append(doc)
            if doc.get("state") == "user exists":
                uid = int(doc["params"]["id"])
                self.users[uid] = {"id": uid, "name": "Grace", "tags": ["admin", "ops"]}
            return web.json_response({})
        if request.headers.get("x-api-key") != API_KEY:
            return web.json_response({"error": "no key"}, status=401)
        uid = int(request.path.rsplit("/", 1)[-1])
        user = self.users.get(uid)
        if user is None:
            return web.json_response({"error": "not found"}, status=404)
        body: dict[str, Any] = {**user, "created": "2025-05-05T01:02:03Z"}
        if self.broken:
            body = {"id": str(uid), "name": 12, "created": "yesterday"}
        return web.json_response(body)


@pytest.fixture
async def provider() -> AsyncIterator[tuple[Provider, FakeUpstream]]:
    p = Provider()
    async with FakeUpstream(p.handle) as up:
        yield p, up


def consumer_pact(out: Path, spec: str) -> Path:
    """The consumer's contract written with pact-python's DSL (its mock server exercised)."""
    match = pact.match
    contract = pact.Pact("web-app", "users-api").with_specification(spec)
    (
        contract.upon_receiving("get an existing user")
        .given("user exists", id=42)
        .with_request("GET", "/users/42")
        .with_header("Accept", "application/json")
        .will_respond_with(200)
        .with_body(
            {
                "id": match.int(42),
                "name": match.str("Ada"),
                "tags": match.each_like("admin", min=1),
                "created": match.datetime("2024-01-02T03:04:05Z", format="%Y-%m-%dT%H:%M:%SZ"),
            },
            content_type="application/json",
        )
    )
    (
        contract.upon_receiving("get a missing user")
        .with_request("GET", "/users/7")
        .will_respond_with(404)
        .with_body({"error": match.regex("not found", regex=r"not \w+")})
    )
    with contract.serve() as mock:
        base = str(mock.url).rstrip("/")
        assert httpx.get(f"{base}/users/42", headers={"Accept": "application/json"}).is_success
        assert httpx.get(f"{base}/users/7").status_code == 404
    contract.write_file(out, overwrite=True)
    return out / "web-app-users-api.json"


def sidecar_config(tmp: Path, url: str) -> Path:
    path = tmp / "sidecar.yaml"
    auth = {"type": "api_key", "key": {"env": "USERS_KEY"}}
    path.write_text(yaml.safe_dump({"upstreams": {"users": {"url": url, "auth": auth}}}))
    return path


async def ours(pact_file: Path, config: Path, state_url: str) -> tuple[int, str]:
    """Our verifier's exit code and output (run in a thread: the provider needs this loop)."""
    args = ["contract", "verify", str(pact_file), "--upstream", "users", "-c", str(config)]
    args += ["--provider-states-url", state_url]
    out = config.parent / "verify.out"

    def run() -> int:
        import contextlib

        with out.open("w") as f, contextlib.redirect_stdout(f):
            return main(args)

    code = await asyncio.to_thread(run)
    return code, out.read_text()


async def theirs(pact_file: Path, url: str, state_url: str) -> bool:
    """Whether pact-python's own verifier passes the provider (called directly, with the key)."""

    def run() -> bool:
        verifier = (
            pact.Verifier("users-api", host="127.0.0.1")
            .add_transport(url=url)
            .add_source(str(pact_file))
            .state_handler(state_url, teardown=False, body=True)
            .add_custom_header("X-API-Key", API_KEY)
        )
        try:
            verifier.verify()
        except RuntimeError:
            return False
        return True

    return await asyncio.to_thread(run)


@pytest.mark.parametrize("spec", ["V3", "V4"])
async def test_our_verdicts_agree_with_pact_pythons_on_a_kept_and_a_broken_contract(
    provider: tuple[Provider, FakeUpstream],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
) -> None:
    """A provider keeping the pact passes both verifiers; one breaking it fails both."""
    monkeypatch.setenv("USERS_KEY", API_KEY)
    monkeypatch.setenv("PACT_DO_NOT_TRACK", "true")
    p, up = provider
    pact_file = await asyncio.to_thread(consumer_pact, tmp_path, spec)
    assert json.loads(pact_file.read_text())["metadata"]["pactSpecification"]["version"].startswith(
        spec[1]
    )
    config, state_url = sidecar_config(tmp_path, up.url), f"{up.url}/_pact/state"

    code, text = await ours(pact_file, config, state_url)
    assert code == 0, text
    assert "PASS  get an existing user (given user exists)" in text
    assert "2 of 2 interactions passed; 0 failed" in text
    assert {"state": "user exists", "params": {"id": 42}, "action": "setup"} in p.states
    assert await theirs(pact_file, up.url, state_url)

    p.broken = True
    code, text = await ours(pact_file, config, state_url)
    assert code == 1, text
    assert "FAIL  get an existing user" in text
    assert '$.id: expected integer, got "42"' in text
    assert "$.name: expected a string (type), got 12" in text
    assert "$.tags: missing" in text
    assert "$.created: expected a datetime formatted" in text
    assert not await theirs(pact_file, up.url, state_url)


async def test_pact_from_cassette_verifies_against_the_provider_it_was_recorded_from(
    provider: tuple[Provider, FakeUpstream], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls recorded through the sidecar make a V3 pact that the same provider passes."""
    from sidecar.testing import running_sidecar

    monkeypatch.setenv("USERS_KEY", API_KEY)
    p, up = provider
    p.users[1] = {"id": 1, "name": "Ada", "tags": []}
    tape = tmp_path / "users.jsonl"
    section = {
        "url": up.url,
        "auth": {"type": "api_key", "key": {"env": "USERS_KEY"}},
        "cassette": {"mode": "record", "path": str(tape)},
    }
    async with running_sidecar({"upstreams": {"users": section}}) as s:
        async with httpx.AsyncClient() as c:
            assert (await c.get(f"http://127.0.0.1:{s.http_port}/users/users/1")).is_success
            missing = await c.get(f"http://127.0.0.1:{s.http_port}/users/users/2")
            assert missing.status_code == 404
    pact_file = tmp_path / "pact.json"
    args = ["contract", "pact-from-cassette", str(tape), "--consumer", "app", "--provider", "users"]
    assert main([*args, "-o", str(pact_file)]) == 0
    doc = json.loads(pact_file.read_text())
    assert doc["metadata"]["pactSpecification"]["version"] == "3.0.0"
    assert [i["response"]["status"] for i in doc["interactions"]] == [200, 404]
    assert API_KEY not in pact_file.read_text()

    code, text = await ours(pact_file, sidecar_config(tmp_path, up.url), f"{up.url}/_pact/state")
    assert code == 0, text
    p.users[1]["name"] = "Grace"  # the provider changed a recorded value: exact values fail
    code, text = await ours(pact_file, sidecar_config(tmp_path, up.url), f"{up.url}/_pact/state")
    assert code == 1
    assert '$.name: expected "Ada", got "Grace"' in text
    assert os.path.exists(tape)
