"""The provider in a real sidecar on 127.0.0.1, in front of an upstream that verifies every
signature independently (botocore recomputes it from what arrived), and ``sidecar check``."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sidecar import ConfigError
from sidecar.testing import running_sidecar
from verifier import CONTAINER_TOKEN, CREDENTIALS_PATH, VerifyingServer

import sidecar_aws_sigv4 as plugin

SIDECAR = str(Path(sys.executable).with_name("sidecar"))
KEY_ID, SECRET = "AKIAINTEGRATION01", "integration/secret+KEY=value0123456789abc"
TOKEN = "IQoJb3JpZ2luX2VjEFAKE/session+token=="  # noqa: S105 - a test value


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch, verifier: VerifyingServer) -> None:
    monkeypatch.setenv("T_AWS_KEY_ID", KEY_ID)
    monkeypatch.setenv("T_AWS_SECRET", SECRET)
    monkeypatch.setenv("T_AWS_TOKEN", TOKEN)
    verifier.script.secrets[KEY_ID] = (SECRET, TOKEN)


def _auth(service: str, **more: Any) -> dict[str, Any]:
    return {
        "type": "aws_sigv4",
        "region": "us-west-2",
        "service": service,
        "access_key_id": {"env": "T_AWS_KEY_ID"},
        "secret_access_key": {"env": "T_AWS_SECRET"},
        "session_token": {"env": "T_AWS_TOKEN"},
        **more,
    }


def _client(port: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)


async def test_every_call_verifies_at_the_upstream(verifier: VerifyingServer, keys: None) -> None:
    """S3 and non-S3 calls of every shape arrive with a signature AWS's algorithm accepts: the
    URL's base path and the path left after the route prefix, the query, the body."""
    config = {
        "upstreams": {
            "s3": {"url": f"{verifier.url}/base", "auth": _auth("s3")},
            "api": {"url": verifier.url, "auth": _auth("execute-api")},
        }
    }
    calls: list[tuple[str, str, dict[str, str], bytes]] = [
        ("GET", "/s3/bucket/", {}, b""),
        ("GET", "/s3/bucket/my%20file/caf%C3%A9?list-type=2&prefix=a%20b&tag=z&tag=a", {}, b""),
        # (an encoded '/' is refused by the sidecar's front before any filter: 404)
        ("PUT", "/s3/bucket/a%3Bb%21/obj.bin", {"content-type": "application/octet-stream"},
         bytes(range(256)) * 64),
        ("PUT", "/s3/bucket/k?x-id=PutObject", {"x-amz-meta-owner": "team   a"}, b"hello"),
        ("GET", "/s3/bucket?acl", {}, b""),
        ("POST", "/api/v1/items?q=a+b&z=%7e&a=%2f", {"content-type": "application/json"},
         b'{"name": "\xc3\xa9"}'),
        ("GET", "/api/v1/%E6%97%A5%E6%9C%AC/x%20y?k=v&k=u&empty=", {}, b""),
        ("DELETE", "/api/v1/items/7", {}, b""),
        ("POST", "/api/", {}, b""),
        # the app's own credential, token and date are replaced, never forwarded
        ("GET", "/api/own", {"authorization": "AWS4-HMAC-SHA256 forged", "date": "x",
                             "x-amz-security-token": "someone-else"}, b""),
    ]  # fmt: skip
    async with running_sidecar(config, plugins=[plugin]) as s, _client(s.http_port) as client:
        for method, target, headers, body in calls:
            r = await client.request(method, target, headers=headers, content=body)
            assert r.status_code == 200, (target, r.text)
    assert len(verifier.script.received) == len(calls)
    assert [r.verdict for r in verifier.script.received] == [None] * len(calls)
    first, second = verifier.script.received[:2]
    assert first.target == "/base/bucket/"
    assert second.target.startswith("/base/bucket/my%20file/caf%C3%A9?")
    last = dict((k.lower(), v) for k, v in verifier.script.received[-1].headers)
    assert last["x-amz-security-token"] == TOKEN
    assert "date" not in last


async def test_a_retried_call_is_signed_again(verifier: VerifyingServer, keys: None) -> None:
    """Each attempt carries its own signature: a retry after a 503 verifies too."""
    verifier.script.fail_next = 1
    config = {"upstreams": {"api": {"url": verifier.url, "auth": _auth("execute-api")}}}
    async with running_sidecar(config, plugins=[plugin]) as s, _client(s.http_port) as client:
        r = await client.get("/api/v1/retry?x=1")
    assert r.status_code == 200, r.text
    assert [r.verdict for r in verifier.script.received] == [None, None]
    first, second = (dict(r.headers)["authorization"] for r in verifier.script.received)
    assert first.count("Signature=") == second.count("Signature=") == 1


async def test_config_headers_and_a_host_override_are_what_is_signed(
    verifier: VerifyingServer, keys: None
) -> None:
    """An upstream ``host`` is the Host signed, and ``request_headers`` of other names set after
    signing leave the signature valid."""
    config = {
        "upstreams": {
            "api": {
                "url": verifier.url,
                "host": "api.example.internal",
                "request_headers": {"x-team": "blue"},
                "auth": _auth("execute-api"),
            }
        }
    }
    async with running_sidecar(config, plugins=[plugin]) as s, _client(s.http_port) as client:
        r = await client.get("/api/things")
    assert r.status_code == 200, r.text
    [seen] = verifier.script.received
    sent = dict((k.lower(), v) for k, v in seen.headers)
    assert sent["host"] == "api.example.internal" and sent["x-team"] == "blue"
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token," in sent["authorization"]


@pytest.mark.parametrize("header", ["x-amz-acl", "Content-Type", "x-request-id"])
async def test_a_signed_header_in_request_headers_stops_start_up(
    verifier: VerifyingServer, keys: None, header: str
) -> None:
    """request_headers are set after signing: one the signature covers is refused at its key
    path, since the upstream would refuse every call."""
    auth = _auth("s3", sign_headers=["x-request-id"])
    up = {"url": verifier.url, "auth": auth, "request_headers": {header: "v"}}
    with pytest.raises(ConfigError) as info:
        async with running_sidecar({"upstreams": {"s3": up}}, plugins=[plugin]):
            pass
    assert f"upstreams.s3.request_headers.{header.lower()}:" in str(info.value)
    assert "signed by aws_sigv4" in str(info.value)


async def test_the_verifier_refuses_a_tampered_body(verifier: VerifyingServer, keys: None) -> None:
    """The upstream's check is not vacuous: a signed call whose body changed is refused."""
    config = {"upstreams": {"api": {"url": verifier.url, "auth": _auth("execute-api")}}}
    async with running_sidecar(config, plugins=[plugin]) as s, _client(s.http_port) as client:
        r = await client.put("/api/b/k", content=b"original")
    assert r.status_code == 200
    [seen] = verifier.script.received
    async with httpx.AsyncClient(base_url=verifier.url) as direct:
        replay = [(k, v) for k, v in seen.headers if k.lower() not in ("content-length", "host")]
        r = await direct.put(seen.target, headers=replay, content=b"tampered")
    assert r.status_code == 403
    assert r.json()["error"] == "signature mismatch"


async def test_a_body_over_max_body_is_refused_and_unsigned_payload_streams(
    verifier: VerifyingServer, keys: None
) -> None:
    """A body too large to hash gets 413 body_too_large and is never sent; with
    ``payload: unsigned`` the same body streams through, signed as UNSIGNED-PAYLOAD."""
    config = {
        "upstreams": {
            "small": {"url": verifier.url, "auth": _auth("s3", max_body=1024)},
            "stream": {"url": verifier.url, "auth": _auth("s3", payload="unsigned")},
        }
    }

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 1000

    async with running_sidecar(config, plugins=[plugin]) as s, _client(s.http_port) as client:
        r = await client.put("/small/b/k", content=b"x" * 5000)
        assert r.status_code == 413
        assert r.headers["x-sidecar-error"] == "body_too_large"
        assert "max_body" in r.text and SECRET not in r.text
        assert verifier.script.received == []
        r = await client.put("/stream/b/k", content=chunks())
        assert r.status_code == 200, r.text
    [seen] = verifier.script.received
    assert dict(seen.headers)["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert seen.verdict is None and len(seen.body) == 5000


async def test_container_credentials_are_fetched_once_and_used(
    verifier: VerifyingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``source: container`` fetches keys from the endpoint (with its authorization token),
    keeps them until near expiry, and signs with them."""
    container_key, container_secret = "ASIACONTAINER0001", "container/secret/value"
    verifier.script.container_keys = {
        "AccessKeyId": container_key,
        "SecretAccessKey": container_secret,
        "Token": "container-session-token",
    }
    verifier.script.secrets[container_key] = (container_secret, "container-session-token")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", verifier.url + CREDENTIALS_PATH)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_TOKEN)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    auth = {"type": "aws_sigv4", "region": "us-east-1", "service": "sqs", "source": "container"}
    config = {"upstreams": {"q": {"url": verifier.url, "auth": auth}}}
    async with running_sidecar(config, plugins=[plugin]) as s, _client(s.http_port) as client:
        for _ in range(3):
            r = await client.post("/q/", content=b"Action=SendMessage")
            assert r.status_code == 200, r.text
    assert verifier.script.credential_fetches == 1
    assert [r.verdict for r in verifier.script.received] == [None] * 3


async def test_a_failing_container_endpoint_is_503_without_secrets(
    verifier: VerifyingServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With no keys to be had the app gets 503 credentials_unavailable, and nothing is sent."""
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", verifier.url + CREDENTIALS_PATH)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_TOKEN)
    auth = {"type": "aws_sigv4", "region": "us-east-1", "service": "sqs", "source": "container"}
    config = {"upstreams": {"q": {"url": verifier.url, "auth": auth}}}
    with caplog.at_level(logging.DEBUG):
        async with running_sidecar(config, plugins=[plugin]) as s, _client(s.http_port) as c:
            r = await c.get("/q/")
    assert r.status_code == 503
    assert r.headers["x-sidecar-error"] == "credentials_unavailable"
    assert "answered 500" in r.text and CONTAINER_TOKEN not in r.text
    assert CONTAINER_TOKEN not in caplog.text
    assert verifier.script.received == []


async def test_no_secret_in_admin_views_or_logs(
    verifier: VerifyingServer, keys: None, caplog: pytest.LogCaptureFixture
) -> None:
    """/config shows references, /upstreams the provider's state, the logs nothing secret."""
    config = {"upstreams": {"s3": {"url": verifier.url, "auth": _auth("s3")}}}
    with caplog.at_level(logging.DEBUG):
        async with running_sidecar(config, plugins=[plugin]) as s:
            async with _client(s.http_port) as client:
                assert (await client.get("/s3/b/k")).status_code == 200
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.admin_port}") as admin:
                shown = (await admin.get("/config")).text + (await admin.get("/upstreams")).text
    assert "T_AWS_SECRET" in shown and '"signed": 1' in shown.replace(" ", " ")
    # botocore, in the verifying upstream's thread, logs what it signs at DEBUG: not ours
    ours = "\n".join(
        f"{r.name} {r.getMessage()}" for r in caplog.records if not r.name.startswith("botocore")
    )
    assert "sidecar" in ours
    for secret in (SECRET, TOKEN):
        assert secret not in shown, shown
        assert secret not in ours


def _check(tmp_path: Path, upstreams: dict[str, dict[str, Any]]) -> str:
    """``sidecar check`` on these upstreams (each to 127.0.0.1:9 unless said): its stderr."""
    path = tmp_path / "sidecar.yaml"
    config = {"upstreams": {n: {"url": "http://127.0.0.1:9", **u} for n, u in upstreams.items()}}
    path.write_text(json.dumps(config))  # a JSON document is YAML too
    done = subprocess.run(  # noqa: S603 - the sidecar installed beside this Python
        [SIDECAR, "check", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    return done.stderr.replace(f"{path}:", "FILE:")


def test_sidecar_check_names_bad_settings_at_their_key_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt key, an inline secret (not repeated), a bad region, a signed header in
    request_headers, a gRPC upstream are refused at their key path with exit 2."""
    base = {"type": "aws_sigv4", "region": "us-east-1", "service": "s3"}
    inline = {**base, "access_key_id": "AKIAINLINE", "secret_access_key": "SHH-inline"}
    out = _check(
        tmp_path,
        {
            "typo": {"auth": {**base, "regoin": "x"}},
            "inline": {"auth": inline},
            "region": {"auth": {**base, "region": "US East"}},
        },
    )
    assert "FILE: upstreams.typo.auth.regoin: unknown key" in out
    assert "FILE: upstreams.inline.auth.access_key_id:" in out
    assert "FILE: upstreams.region.auth.region:" in out
    assert "AKIAINLINE" not in out and "SHH-inline" not in out
    # checks made when the routes are composed, once the file itself is valid
    monkeypatch.setenv("T_AWS_KEY_ID", KEY_ID)
    monkeypatch.setenv("T_AWS_SECRET", SECRET)
    monkeypatch.setenv("T_AWS_TOKEN", TOKEN)
    out = _check(tmp_path, {"s3": {"auth": _auth("s3"), "request_headers": {"x-amz-acl": "p"}}})
    assert "FILE: upstreams.s3.request_headers.x-amz-acl: x-amz-acl is signed by aws_sigv4" in out
    out = _check(tmp_path, {"rpc": {"auth": _auth("s3"), "adapter": "grpc"}})
    assert "FILE: upstreams.rpc.auth" in out and "gRPC" in out
    assert SECRET not in out and TOKEN not in out
