"""api_key, bearer, basic and hmac put their credential on the call, replacing the app's."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

from sidecar.auth.broker import RESOURCE, CredentialBroker
from sidecar.auth.filter import factory
from sidecar.chain import Filter
from sidecar.errors import BodyTooLarge
from sidecar.exchange import Exchange, Response
from sidecar.testing import isolated_plugin_host, make_exchange, make_route_context, responder

TYPES = {r.name: r.item for r in isolated_plugin_host().registries.credentials.registrations()}
NOW = 1_700_000_000.0


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "k3y/with+odd=chars")
    monkeypatch.setenv("TOKEN", "tok-123")
    monkeypatch.setenv("PASSWORD", "pässwörd:with-colon")
    monkeypatch.setenv("SIGNING", "shared-signing-secret")


def auth_filter(auth: dict[str, Any], url: str = "http://127.0.0.1:9") -> Filter:
    ctx = make_route_context({"url": url, "auth": auth})
    broker = CredentialBroker(TYPES, ctx.metrics, wall=lambda: NOW)
    built = factory(dataclasses.replace(ctx, resources={RESOURCE: broker}))
    assert built is not None
    return built


async def sent(f: Filter, exchange: Exchange) -> Exchange:
    seen: list[Exchange] = []
    response = await f(exchange, responder(200, seen=seen))
    assert response.status == 200
    return seen[0]


async def test_api_key_goes_in_x_api_key_replacing_the_apps() -> None:
    """{type: api_key, key: {env: NAME}} sends X-API-Key, one value, the configured one."""
    f = auth_filter({"type": "api_key", "key": {"env": "API_KEY"}})
    ex = await sent(f, make_exchange(headers={"X-API-Key": "the-apps-own", "accept": "*/*"}))
    assert ex.headers.get_all("x-api-key") == ["k3y/with+odd=chars"]
    assert ex.headers.get("accept") == "*/*"


async def test_api_key_in_a_query_parameter_replaces_the_apps_and_is_encoded() -> None:
    """query: api_key appends the key percent-encoded and drops the app's value of it."""
    f = auth_filter({"type": "api_key", "key": {"env": "API_KEY"}, "query": "api_key"})
    ex = await sent(f, make_exchange(path="/v1/x", query="a=1&api_key=mine&b=2"))
    assert ex.query == "a=1&b=2&api_key=k3y%2Fwith%2Bodd%3Dchars"
    assert ex.path == "/v1/x" and "x-api-key" not in ex.headers
    ex = await sent(f, make_exchange(path="/v1/x"))
    assert ex.query == "api_key=k3y%2Fwith%2Bodd%3Dchars"


async def test_bearer_replaces_the_apps_authorization_instead_of_adding_one() -> None:
    """The upstream sees exactly one Authorization: the sidecar's."""
    f = auth_filter({"type": "bearer", "token": {"env": "TOKEN"}})
    ex = await sent(f, make_exchange(headers=[("Authorization", "Bearer app"), ("x", "1")]))
    assert ex.headers.get_all("authorization") == ["Bearer tok-123"]


async def test_bearer_header_and_scheme_are_configurable() -> None:
    """scheme: "" sends the token alone, in the header named."""
    f = auth_filter(
        {"type": "bearer", "token": {"env": "TOKEN"}, "header": "X-Token", "scheme": ""}
    )
    ex = await sent(f, make_exchange())
    assert ex.headers.get("x-token") == "tok-123" and "authorization" not in ex.headers


async def test_basic_sends_base64_of_user_and_password_in_utf8() -> None:
    """RFC 7617: Authorization: Basic base64(user ":" password), UTF-8."""
    f = auth_filter({"type": "basic", "username": "shop", "password": {"env": "PASSWORD"}})
    ex = await sent(f, make_exchange(headers={"authorization": "Basic bm9wZTpub3Bl"}))
    [value] = ex.headers.get_all("authorization")
    scheme, _, encoded = value.partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "shop:pässwörd:with-colon"


async def test_pass_through_forwards_the_apps_own_credential_untouched() -> None:
    """pass_through: true keeps a credential the app sent, and injects when it sent none."""
    f = auth_filter({"type": "bearer", "token": {"env": "TOKEN"}, "pass_through": True})
    ex = await sent(f, make_exchange(headers={"authorization": "Bearer apps-own"}))
    assert ex.headers.get_all("authorization") == ["Bearer apps-own"]
    ex = await sent(f, make_exchange())
    assert ex.headers.get_all("authorization") == ["Bearer tok-123"]


async def test_pass_through_of_a_query_key() -> None:
    """With a query key, the app's own parameter is what pass_through looks for."""
    f = auth_filter(
        {"type": "api_key", "key": {"env": "API_KEY"}, "query": "key", "pass_through": True}
    )
    assert (await sent(f, make_exchange(query="key=mine"))).query == "key=mine"


def independent_signature(secret: str, ts: str, method: str, target: str, body: bytes) -> str:
    """The documented string-to-sign, written again here from docs/credentials.md."""
    message = "\n".join([ts, method, target, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


async def test_hmac_signature_verifies_with_an_independent_implementation() -> None:
    """X-Signature is sha256=HMAC(secret, ts\\nMETHOD\\ntarget\\nsha256(body)), X-Timestamp ts."""
    f = auth_filter({"type": "hmac", "secret": {"env": "SIGNING"}}, url="http://h:1/base/")
    ex = make_exchange(
        "POST", "/hooks/order", {"x-signature": "sha256=forged"}, b'{"id": 1}', query="a=1"
    )
    ex = await sent(f, ex)
    ts = ex.headers.get("x-timestamp")
    assert ts == str(int(NOW))
    expected = independent_signature(
        "shared-signing-secret", ts, "POST", "/base/hooks/order?a=1", b'{"id": 1}'
    )
    assert ex.headers.get_all("x-signature") == [f"sha256={expected}"]


async def test_hmac_headers_and_prefix_are_configurable() -> None:
    """Receivers that expect other names get them: header, timestamp_header, prefix."""
    f = auth_filter(
        {
            "type": "hmac",
            "secret": {"env": "SIGNING"},
            "header": "X-Hub-Signature-256",
            "timestamp_header": "X-Hub-Time",
            "prefix": "",
        }
    )
    ex = await sent(f, make_exchange("GET", "/x"))
    expected = independent_signature("shared-signing-secret", str(int(NOW)), "GET", "/x", b"")
    assert ex.headers.get("x-hub-signature-256") == expected
    assert ex.headers.get("x-hub-time") == str(int(NOW))


async def chunks(parts: list[bytes], read: list[int]) -> AsyncIterator[bytes]:
    for part in parts:
        read.append(len(part))
        yield part


async def test_hmac_reads_a_streamed_body_whole_and_signs_it() -> None:
    """A streamed body under max_body is buffered, signed, and sent as the same bytes."""
    f = auth_filter({"type": "hmac", "secret": {"env": "SIGNING"}})
    read: list[int] = []
    ex = make_exchange("PUT", "/x", body=chunks([b"abc", b"def"], read))
    ex.body_length = None
    ex = await sent(f, ex)
    assert ex.body == b"abcdef"
    expected = independent_signature("shared-signing-secret", str(int(NOW)), "PUT", "/x", b"abcdef")
    assert ex.headers.get("x-signature") == f"sha256={expected}"


async def test_hmac_refuses_a_body_over_max_body_before_reading_it() -> None:
    """A known-length body over the limit is 413 with the reason, and never read or sent."""
    f = auth_filter({"type": "hmac", "secret": {"env": "SIGNING"}, "max_body": "1KiB"})
    read: list[int] = []
    ex = make_exchange("POST", "/x", body=chunks([b"x" * 2048], read))
    ex.body_length = 2048
    with pytest.raises(BodyTooLarge, match=r"hmac signing needs the whole body.*auth\.max_body"):
        await f(ex, responder(200))
    assert read == []


async def test_hmac_refuses_a_chunked_body_that_grows_past_max_body() -> None:
    """A body of unknown length is read up to the limit, then refused (413), never sent."""
    f = auth_filter({"type": "hmac", "secret": {"env": "SIGNING"}, "max_body": "1KiB"})
    seen: list[Exchange] = []
    ex = make_exchange("POST", "/x", body=chunks([b"x" * 600, b"y" * 600], []))
    ex.body_length = None
    with pytest.raises(BodyTooLarge) as caught:
        await f(ex, responder(200, seen=seen))
    assert seen == [] and caught.value.status == 413


async def test_a_static_provider_builds_no_coroutine_per_call() -> None:
    """api_key/bearer/basic cost one plain call: the filter puts the credential on the call
    and hands back the rest of the chain's own awaitable, with no coroutine of its own."""
    f = auth_filter({"type": "bearer", "token": {"env": "TOKEN"}})
    seen: list[Exchange] = []
    rest = responder(200, seen=seen)
    handed: list[Awaitable[Response]] = []

    def call_next(ex: Exchange) -> Awaitable[Response]:
        handed.append(rest(ex))
        return handed[-1]

    ex = make_exchange()
    awaitable = f(ex, call_next)
    assert awaitable is handed[0]
    assert (await awaitable).status == 200
    assert seen[0].headers.get("authorization", "").startswith("Bearer ")
