"""The resilience and security policies on gRPC calls: each sidecar decision in gRPC terms, the
breaker judging status codes, UNAUTHENTICATED renewing a token, and what config refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from sidecar.api import CredentialProvider, RouteContext, SharedState
from sidecar.api.shared import SharedStateBuilder
from sidecar.auth.filter import make_auth_filter
from sidecar.chain import Handler, compose
from sidecar.config import parse_config
from sidecar.config.policies import GRPC_CONDITIONS, CircuitBreakerPolicy, RetryPolicy
from sidecar.errors import (
    CircuitOpen,
    ConfigError,
    CredentialsUnavailable,
    Overloaded,
    RateLimited,
    RateLimitUnavailable,
    SidecarError,
    UpstreamTimeout,
)
from sidecar.exchange import Exchange, Headers, Response
from sidecar.filters import circuit_breaker, rescue, timeout
from sidecar.grpc.wire import GRPC_LISTENER, STATUS_NAMES, classify_grpc, condition_of
from sidecar.resilience.breaker import CLOSED, OPEN
from sidecar.testing import isolated_plugin_host, make_exchange, make_route_context, on_front

OK, DEADLINE_EXCEEDED, NOT_FOUND, RESOURCE_EXHAUSTED, UNAVAILABLE, UNAUTHENTICATED = (
    0,
    4,
    5,
    8,
    14,
    16,
)


def answer(code: int) -> Response:
    resp = Response(200)
    resp.trailers = Headers([("grpc-status", str(code))])
    return resp


def answering(code: int) -> Handler:
    async def upstream(exchange: Exchange) -> Response:
        return answer(code)

    return upstream


def grpc_context(upstream: dict[str, Any] | None = None) -> RouteContext:
    ctx = make_route_context({"url": "http://127.0.0.1:9", **(upstream or {})})
    # one state for the routes of the test, as a running sidecar keeps it
    shared = SharedStateBuilder(SharedState())
    return on_front(ctx, "grpc", classify=classify_grpc, shared_state=shared)


def call(*messages: bytes) -> Exchange:
    async def body() -> AsyncIterator[bytes]:
        for m in messages:
            yield m

    ex = make_exchange("POST", "/echo.v1.Echo/Unary", body=body())
    ex.listener = GRPC_LISTENER
    return ex


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RateLimited("over 5/s"), RESOURCE_EXHAUSTED),
        (CircuitOpen("open"), UNAVAILABLE),
        (Overloaded("limit"), UNAVAILABLE),
        (UpstreamTimeout("slow"), DEADLINE_EXCEEDED),
        (CredentialsUnavailable("idp down"), UNAVAILABLE),
        (RateLimitUnavailable("redis down"), UNAVAILABLE),
    ],
)
async def test_each_decision_reaches_a_grpc_app_as_its_status_with_x_sidecar_error(
    error: SidecarError, code: int
) -> None:
    """A gRPC app sees the status its library understands, and who decided, in the trailers."""

    async def decide(exchange: Exchange) -> Response:
        raise error

    handler = compose([rescue.factory(grpc_context())], decide)
    resp = await handler(call(b"m"))
    assert resp.status == 200 and resp.body == b""  # trailers-only
    assert resp.trailers is not None
    assert resp.trailers.get("grpc-status") == str(code)
    assert resp.trailers.get("x-sidecar-error") == error.code
    assert resp.trailers.get("grpc-message") == f"{error.code}: {error.detail}"


async def test_a_timeout_on_a_grpc_call_is_deadline_exceeded() -> None:
    """The route's `timeout` cutting a gRPC call gives the app DEADLINE_EXCEEDED."""
    ctx = grpc_context({"timeout": "50ms"})

    async def slow(exchange: Exchange) -> Response:
        await asyncio.sleep(10)
        return answer(OK)

    handler = compose([rescue.factory(ctx), timeout.factory(ctx)], slow)
    resp = await asyncio.wait_for(handler(call(b"m")), 5)
    assert resp.trailers is not None
    assert resp.trailers.get("grpc-status") == str(DEADLINE_EXCEEDED)
    assert resp.trailers.get("x-sidecar-error") == "upstream_timeout"


async def test_the_apps_shorter_deadline_wins_over_the_routes_timeout() -> None:
    """The listener puts the app's deadline on the exchange; the timeout filter keeps it."""
    ctx = grpc_context({"timeout": "10s"})
    seen: list[float | None] = []

    async def upstream(exchange: Exchange) -> Response:
        seen.append(exchange.deadline)
        return answer(OK)

    ex = call(b"m")
    ex.deadline = asyncio.get_running_loop().time() + 0.5
    await compose([timeout.factory(ctx)], upstream)(ex)
    assert seen == [ex.deadline]


async def test_the_breaker_opens_on_unavailable_but_not_on_answers_about_the_call() -> None:
    """UNAVAILABLE is the upstream failing; NOT_FOUND or RESOURCE_EXHAUSTED are answers."""
    ctx = grpc_context({"circuit_breaker": {"consecutive_failures": 3}})
    f = circuit_breaker.factory(ctx)
    assert f is not None
    assert ctx.shared_state is not None
    breaker = ctx.shared_state.build().get(circuit_breaker.BREAKER, ctx.upstream_name)

    for code in (UNAVAILABLE, UNAVAILABLE, NOT_FOUND, UNAVAILABLE, RESOURCE_EXHAUSTED):
        await f(call(b"m"), answering(code))
    assert breaker.state == CLOSED  # the streak was broken twice
    for _ in range(3):
        await f(call(b"m"), answering(UNAVAILABLE))
    assert breaker.state == OPEN
    with pytest.raises(CircuitOpen):
        await f(call(b"m"), answering(OK))


def test_the_default_policies_know_the_grpc_codes() -> None:
    """Out of the box, UNAVAILABLE is retried and the codes of a failing server trip the breaker."""
    assert "unavailable" in RetryPolicy().on
    failing = set(CircuitBreakerPolicy().failure_on) & GRPC_CONDITIONS
    assert failing == {"unavailable", "deadline-exceeded", "internal", "unknown", "data-loss"}


def test_every_grpc_condition_name_is_one_the_adapter_produces() -> None:
    """The names config accepts for gRPC are exactly the classifier's (a typo cannot match)."""
    produced = {name for code in range(1, len(STATUS_NAMES)) for name in condition_of(code)}
    assert produced == GRPC_CONDITIONS


def test_grpc_spellings_of_codes_are_accepted_in_config() -> None:
    """`RESOURCE_EXHAUSTED` (as gRPC writes it) means the condition resource-exhausted."""
    policy = RetryPolicy.model_validate({"on": ["RESOURCE_EXHAUSTED", "Unavailable"]})
    assert policy.on == ["resource-exhausted", "unavailable"]


class Renewable(CredentialProvider):
    settings_model = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self.header = "authorization"
        self.token = 1

    async def apply(self, exchange: Exchange) -> object:
        exchange.headers.set("authorization", f"Bearer t{self.token}")
        return self.token

    async def unauthorized(self, grant: object | None) -> bool:
        if grant == self.token:
            self.token += 1
            return True
        return False


class Refusing:
    """An upstream answering UNAUTHENTICATED to the first token; records messages and tokens."""

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, list[bytes]]] = []

    async def __call__(self, exchange: Exchange) -> Response:
        body = exchange.body
        assert not isinstance(body, bytes)
        token = exchange.headers.get("authorization")
        self.seen.append((token, [m async for m in body]))
        return answer(UNAUTHENTICATED if token == "Bearer t1" else OK)


async def test_unauthenticated_renews_the_token_and_resends_the_same_messages() -> None:
    """gRPC's 401: the refused token is renewed and the call sent once more, messages intact."""
    f = make_auth_filter(Renewable(), grpc_buffer=1024)
    up = Refusing()
    resp = await f(call(b"one", b"two"), up)
    assert resp.trailers is not None and resp.trailers.get("grpc-status") == "0"
    assert up.seen == [("Bearer t1", [b"one", b"two"]), ("Bearer t2", [b"one", b"two"])]


async def test_unauthenticated_is_the_apps_when_the_stream_was_too_long_to_keep() -> None:
    """Messages past the buffer cannot be sent again: the app gets UNAUTHENTICATED."""
    f = make_auth_filter(Renewable(), grpc_buffer=4)
    up = Refusing()
    resp = await f(call(b"one", b"two"), up)
    assert resp.trailers is not None
    assert resp.trailers.get("grpc-status") == str(UNAUTHENTICATED)
    assert len(up.seen) == 1


SCHEMAS = isolated_plugin_host().schemas()


def auth_problems(auth: dict[str, Any]) -> list[str]:
    text = yaml.safe_dump(
        {
            "upstreams": {
                "inv": {
                    "url": "grpc://127.0.0.1:1",
                    "adapter": "grpc",
                    "services": ["inventory.v1.Inventory"],
                    "auth": auth,
                }
            }
        }
    )
    try:
        parse_config(text, "sidecar.yaml", {}, schemas=SCHEMAS)
    except ConfigError as e:
        return [str(p) for p in e.problems if ".auth" in p.path]
    return []


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        ({"type": "hmac", "secret": {"env": "GRPC_TEST_KEY"}}, "signs an HTTP request's body"),
        (
            {"type": "api_key", "query": "key", "key": {"env": "GRPC_TEST_KEY"}},
            "has no query string",
        ),
    ],
)
def test_credentials_a_grpc_call_cannot_carry_are_refused_at_load(
    auth: dict[str, Any], reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HMAC signature or a key in the query would silently not protect a gRPC call."""
    monkeypatch.setenv("GRPC_TEST_KEY", "k")
    found = auth_problems(auth)
    assert len(found) == 1
    assert found[0].startswith("sidecar.yaml: upstreams.inv.auth: ") and reason in found[0]


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "api_key", "key": {"env": "GRPC_TEST_KEY"}},
        {"type": "bearer", "token": {"env": "GRPC_TEST_KEY"}},
        {
            "type": "oauth2_client_credentials",
            "token_url": "https://idp/token",
            "client_id": "shop",
            "client_secret": {"env": "GRPC_TEST_KEY"},
        },
    ],
)
def test_header_credentials_are_fine_on_a_grpc_upstream(
    auth: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials carried in a header become metadata: accepted as they are."""
    monkeypatch.setenv("GRPC_TEST_KEY", "k")
    assert auth_problems(auth) == []
