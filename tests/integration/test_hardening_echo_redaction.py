"""Through a real sidecar, the echo upstream never shows the app a credential the sidecar holds.

One echo upstream per kind of credential (api_key in a header and in the query, bearer, Basic,
an OAuth2 token from a token endpoint the test runs, an HMAC signature, a secret
`request_headers` value): the app calls each and reads the JSON the echo adapter answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from sidecar.testing import FakeUpstream, running_sidecar

SECRET = "s3cr3t-Ech0-Int-5e6f"  # distinctive: grep-able in any answer
TOKEN = "tok-from-the-idp-91ab"


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECHO_SECRET", SECRET)


async def token_endpoint(request: web.Request) -> web.Response:
    return web.json_response({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 600})


@pytest.fixture
async def idp() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(token_endpoint) as server:
        yield server


def echo(**extra: Any) -> dict[str, Any]:
    return {"adapter": "echo", **extra}


SECRET_REF = {"env": "ECHO_SECRET"}

# upstream -> (the header or query parameter to look at, what the echo must show for it)
EXPECTED = {
    "keyed": ("x-api-key", "<redacted: auth api_key>"),
    "bearer": ("authorization", "<redacted: auth bearer>"),
    "basic": ("authorization", "<redacted: auth basic>"),
    "oauth": ("authorization", "<redacted: auth oauth2_client_credentials>"),
    "signed": ("x-signature", "<redacted: auth hmac>"),
    "headers": ("x-token", "<redacted: request_headers secret>"),
}


def config(token_url: str) -> dict[str, Any]:
    return {
        "telemetry": {"access_log": {"enabled": False}},
        "upstreams": {
            "keyed": echo(auth={"type": "api_key", "key": SECRET_REF}),
            "queried": echo(auth={"type": "api_key", "key": SECRET_REF, "query": "api_key"}),
            "bearer": echo(auth={"type": "bearer", "token": SECRET_REF}),
            "basic": echo(auth={"type": "basic", "username": "shop", "password": SECRET_REF}),
            "oauth": echo(
                auth={
                    "type": "oauth2_client_credentials",
                    "token_url": token_url,
                    "client_id": "shop",
                    "client_secret": SECRET_REF,
                }
            ),
            "signed": echo(auth={"type": "hmac", "secret": SECRET_REF}),
            "headers": echo(
                request_headers={"x-token": SECRET_REF, "x-sidecar-demo": "injected-by-sidecar"}
            ),
        },
    }


async def test_every_kind_of_credential_is_shown_by_name_only(idp: FakeUpstream) -> None:
    """The app learns which header the sidecar set, never the credential itself."""
    async with running_sidecar(config(f"{idp.url}/token")) as sidecar:
        base = f"http://127.0.0.1:{sidecar.http_port}"
        async with httpx.AsyncClient(timeout=10) as client:
            for upstream, (header, shown) in EXPECTED.items():
                r = await client.post(f"{base}/{upstream}/x", content=b"{}")
                assert r.status_code == 200, (upstream, r.text)
                assert SECRET not in r.text and TOKEN not in r.text, upstream
                doc = json.loads(r.text)
                assert doc["headers"][header] == shown, (upstream, doc["headers"])
            r = await client.get(f"{base}/queried/x", params={"a": "1", "api_key": "mine"})
            assert SECRET not in r.text
            assert json.loads(r.text)["query"] == "a=1&api_key=<redacted: auth api_key>"
            # a value written in the file is not a secret: shown as sent
            r = await client.get(f"{base}/headers/x")
            assert json.loads(r.text)["headers"]["x-sidecar-demo"] == "injected-by-sidecar"
    # the token endpoint was really called: the OAuth2 value redacted above was a real token
    assert idp.requests


async def test_the_embedded_defaults_demo_header_stays_visible() -> None:
    """The first call of the README still shows the injected x-sidecar-demo header."""
    async with running_sidecar(
        {"upstreams": {"echo": echo(request_headers={"x-sidecar-demo": "injected-by-sidecar"})}}
    ) as sidecar:
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(f"http://127.0.0.1:{sidecar.http_port}/echo/hello?x=1")
    assert json.loads(r.text)["headers"]["x-sidecar-demo"] == "injected-by-sidecar"
