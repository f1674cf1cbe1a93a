"""The order rules of every chain (``sidecar.api.phases.INVARIANTS``), each shown by what a user
sees when it holds: the real built-in filters, composed as the sidecar composes them (the
registry of a plugin host, in its order), around a fake upstream. No sockets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sidecar.api import INVARIANTS
from sidecar.auth.broker import PROVIDER
from sidecar.auth.hmac import sign
from sidecar.config.models import TracingConfig
from sidecar.exchange import Exchange, Response
from sidecar.filters.circuit_breaker import BREAKER
from sidecar.filters.concurrency import LIMITER
from sidecar.plugins import make_plugin_host
from sidecar.telemetry import access_writer
from sidecar.telemetry.families import CounterChild
from sidecar.telemetry.logs import ACCESS_LOGGER
from sidecar.telemetry.metrics import Metrics, RouteMetrics
from sidecar.telemetry.tracing import Tracing
from sidecar.telemetry.tracing_sdk import build_tracing
from sidecar.telemetry.tracing_settings import resolve
from sidecar.testing import make_exchange
from tests.unit.chain_harness import (
    RotatingToken,
    Route,
    Upstream,
    complete,
    counted,
    decided,
    eventually,
    route,
    spans,
)

URL = "http://pay.internal:8443"
#: a rate nothing refills during a test: ``burst`` calls, then refusals
ONE_CALL = {"rate": "1/min", "burst": 1}
#: retries that wait next to nothing and that no budget stops
QUICK_RETRIES = {"backoff": {"base": "1ms", "max": "1ms"}, "budget": {"min_retries": 100}}
WEB = "spiffe://cluster.local/ns/shop/sa/web"
STRANGER = "spiffe://elsewhere.example/ns/x/sa/intruder"
INBOUND = {
    "inbound": {
        "address": "127.0.0.1:0",
        "app": "127.0.0.1:8080",
        "tls": {"cert": "/x/tls.crt", "key": "/x/tls.key", "ca": "/x/ca.crt"},
        "allow": [WEB],
    }
}
SECRET = "webhook-signing-secret"


class AccessLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(dict(getattr(record, "fields", {})))


@pytest.fixture
def access_lines() -> Iterator[list[dict[str, Any]]]:
    """The access-log lines written during the test (level INFO: every call gets one)."""
    assert access_writer.current() is None  # lines go through the logger, where we read them
    logger = logging.getLogger(ACCESS_LOGGER)
    handler, old = AccessLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(old)


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    """Tracing on, every call sampled, spans kept in memory."""
    settings = resolve(TracingConfig(sample_ratio=1.0), {})
    assert settings is not None
    live = build_tracing(settings, InMemorySpanExporter())
    yield live
    live.processor.shutdown(1.0)


#: (outer, inner) → the test that shows the invariant (filled by :func:`shows`).
SHOWN: dict[tuple[str, str], str] = {}


def shows(outer: str, inner: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(test: Callable[..., Any]) -> Callable[..., Any]:
        SHOWN[(outer, inner)] = test.__name__
        return test

    return mark


def in_order(r: Route, outer: str, inner: str) -> None:
    """Both filters are in the route's chain, ``outer`` outside ``inner`` (else the test below
    would show nothing about the invariant)."""
    assert outer in r.names and inner in r.names, r.names
    assert r.names.index(outer) < r.names.index(inner), r.names


# --- the registrations ------------------------------------------------------------------------


def test_the_built_in_registrations_keep_every_invariant() -> None:
    """The sidecar as shipped composes every chain in an order that keeps each rule."""
    order = [
        reg.name for reg in make_plugin_host(load_entry_points=False).registries.filters.ordered()
    ]
    broken = [
        f"{i.outer} must run outside {i.inner}: {i.why}"
        for i in INVARIANTS
        if i.outer not in order
        or i.inner not in order
        or order.index(i.outer) > order.index(i.inner)
    ]
    assert not broken, "\n".join(broken)


def test_every_invariant_is_shown_by_a_test_of_its_own() -> None:
    """A new rule comes with the test that shows what a user would lose without it."""
    rules = {(i.outer, i.inner) for i in INVARIANTS}
    assert set(SHOWN) == rules, {"untested": rules - set(SHOWN), "no such rule": set(SHOWN) - rules}
    assert len(set(SHOWN.values())) == len(SHOWN)


# --- observe: rescue, access log, SERVER span, metrics -----------------------------------------


@shows("rescue", "access_log")
async def test_a_rescued_error_still_gets_its_access_log_line(
    access_lines: list[dict[str, Any]],
) -> None:
    """A bug below the log is answered 500 ``internal``, and the call's log line says so."""

    async def broken(exchange: Exchange) -> Response:
        raise RuntimeError("a bug below the access log")

    r = route({"url": URL}, broken)
    in_order(r, "rescue", "access_log")
    resp = await r.handler(make_exchange())
    assert (resp.status, decided(resp)) == (500, "internal")
    (line,) = access_lines
    assert (line["status"], line["error"]) == (500, "internal")


@shows("access_log", "tracing")
async def test_a_call_the_tracing_filter_fails_still_gets_its_log_line(
    access_lines: list[dict[str, Any]], tracing: Tracing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call gets its line, naming its SERVER span's trace; a call whose span could not be
    made (a tracing bug) gets a line too."""
    r = route({"url": URL, "rate_limit": ONE_CALL}, Upstream(), tracing=tracing)
    in_order(r, "access_log", "tracing")
    complete(await r.handler(make_exchange()))  # the app sent no traceparent
    assert decided(await r.handler(make_exchange())) == "rate_limited"
    traces = {format(s.context.trace_id, "032x") for s in spans(tracing, SpanKind.SERVER)}
    assert len(traces) == 2
    assert {line["trace_id"] for line in access_lines} == traces

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the tracing SDK")

    monkeypatch.setattr(tracing.tracer, "start_span", broken)
    resp = await route({"url": URL}, Upstream(), tracing=tracing).handler(make_exchange())
    assert decided(resp) == "internal"
    assert (access_lines[-1]["status"], access_lines[-1]["error"]) == (500, "internal")
    assert len(access_lines) == 3


class CountingFails(RouteMetrics):
    __slots__ = ()

    def count(self, status: int) -> None:
        raise RuntimeError("a bug in the metrics filter")

    def requests(self, status: int) -> CounterChild:
        raise RuntimeError("a bug in the metrics filter")


class MetricsWithABug(Metrics):
    def route(self, listener: str, upstream: str, route: str) -> RouteMetrics:
        return CountingFails(self, listener, upstream, route)


@shows("tracing", "metrics")
async def test_the_server_span_covers_the_whole_call(tracing: Tracing) -> None:
    """The SERVER span lasts as long as the upstream took, records every decision below it, and
    ends with the error of a filter below that fails (metrics included)."""
    r = route({"url": URL, "rate_limit": ONE_CALL}, Upstream(latency=0.05), tracing=tracing)
    in_order(r, "tracing", "metrics")
    complete(await r.handler(make_exchange()))
    assert decided(await r.handler(make_exchange())) == "rate_limited"
    answered, refused = spans(tracing, SpanKind.SERVER)
    assert answered.end_time is not None and answered.start_time is not None
    assert answered.end_time - answered.start_time >= 50_000_000  # ns: the upstream's 0.05 s
    assert refused.attributes is not None
    assert refused.attributes["sidecar.decision"] == "rate_limited"
    assert refused.attributes["http.response.status_code"] == 429
    r = route({"url": URL}, Upstream(), tracing=tracing, metrics=MetricsWithABug())
    assert decided(await r.handler(make_exchange())) == "internal"
    failed = spans(tracing, SpanKind.SERVER)[2:]
    assert [s.attributes["error.type"] for s in failed if s.attributes] == ["RuntimeError"]


@shows("metrics", "rate_limit")
async def test_a_429_is_counted_as_what_the_app_got() -> None:
    """``sidecar_requests_total`` counts the refused call as the 429 the app got."""
    r = route({"url": URL, "rate_limit": ONE_CALL}, Upstream())
    in_order(r, "metrics", "rate_limit")
    assert (await r.handler(make_exchange())).status == 200
    assert (await r.handler(make_exchange())).status == 429
    calls = {"listener": "http", "upstream": "test", "route": "test"}
    assert counted(r, "sidecar_requests_total", **calls, code="200") == 1
    assert counted(r, "sidecar_requests_total", **calls, code="429") == 1
    errors = {"listener": "http", "upstream": "test", "reason": "rate_limited"}
    assert counted(r, "sidecar_errors_total", **errors) == 1


@shows("metrics", "peer_allow")
async def test_a_refused_peer_is_counted_as_what_it_got() -> None:
    """A peer refused on the inbound port shows in the metrics as the 403 it got, and why."""
    r = route({"url": URL}, Upstream(), config=INBOUND, front="inbound", name="inbound")
    in_order(r, "metrics", "peer_allow")
    call = make_exchange()
    call.peer_identity = STRANGER
    resp = await r.handler(call)
    assert (resp.status, decided(resp)) == (403, "peer_not_allowed")
    calls = {"listener": "inbound", "upstream": "test", "route": "inbound", "code": "403"}
    assert counted(r, "sidecar_requests_total", **calls) == 1
    errors = {"listener": "inbound", "upstream": "test", "reason": "peer_not_allowed"}
    assert counted(r, "sidecar_errors_total", **errors) == 1


@shows("metrics", "verify_hmac")
async def test_an_unsigned_call_is_counted_as_what_it_got(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call refused for its signature shows in the metrics as the 401 it got, and why."""
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    r = route({"url": URL, "verify_hmac": {"secret": {"env": "HOOK_SECRET"}}}, Upstream())
    in_order(r, "metrics", "verify_hmac")
    resp = await r.handler(make_exchange("POST", "/hook", body=b"{}"))
    assert (resp.status, decided(resp)) == (401, "signature_invalid")
    calls = {"listener": "http", "upstream": "test", "route": "test", "code": "401"}
    assert counted(r, "sidecar_requests_total", **calls) == 1
    errors = {"listener": "http", "upstream": "test", "reason": "signature_invalid"}
    assert counted(r, "sidecar_errors_total", **errors) == 1


# --- admit: who may call, and how often --------------------------------------------------------


@shows("peer_allow", "rate_limit")
async def test_a_refused_peer_takes_no_token() -> None:
    """Peers refused by the allow-list cannot use up the rate limit of the allowed ones."""
    r = route(
        {"url": URL, "rate_limit": ONE_CALL},
        Upstream(),
        config=INBOUND,
        front="inbound",
        name="inbound",
    )
    in_order(r, "peer_allow", "rate_limit")

    def call(peer: str) -> Exchange:
        exchange = make_exchange()
        exchange.peer_identity = peer
        return exchange

    for _ in range(3):
        assert decided(await r.handler(call(STRANGER))) == "peer_not_allowed"
    assert (await r.handler(call(WEB))).status == 200  # the one token was still there
    assert decided(await r.handler(call(WEB))) == "rate_limited"  # and the limit is on


def signed(body: bytes) -> Exchange:
    stamp = str(int(time.time()))
    signature = sign(SECRET.encode(), stamp, "POST", "/hook", body)
    headers = {"x-signature": f"sha256={signature}", "x-timestamp": stamp}
    return make_exchange("POST", "/hook", headers, body)


@shows("verify_hmac", "rate_limit")
async def test_an_unsigned_call_takes_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forged or unsigned webhooks cannot use up the rate limit of the signed ones."""
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    policy = {"secret": {"env": "HOOK_SECRET"}}
    r = route({"url": URL, "verify_hmac": policy, "rate_limit": ONE_CALL}, Upstream())
    in_order(r, "verify_hmac", "rate_limit")
    for _ in range(3):
        unsigned = await r.handler(make_exchange("POST", "/hook", body=b"{}"))
        assert decided(unsigned) == "signature_invalid"
    assert (await r.handler(signed(b'{"n": 1}'))).status == 200
    assert decided(await r.handler(signed(b'{"n": 2}'))) == "rate_limited"


SHARED_BACKEND = {"ratelimit_backends": {"shared": {"type": "local", "timeout": "1s"}}}


@shows("rate_limit", "global_rate_limit")
async def test_a_locally_refused_call_costs_no_round_trip() -> None:
    """Calls over the local limit never reach the global backend (no Redis round trip)."""
    upstream = {
        "url": URL,
        "rate_limit": ONE_CALL,
        "global_rate_limit": {"backend": "shared", "rate": "1000/s"},
    }
    r = route(upstream, Upstream(), config=SHARED_BACKEND)
    in_order(r, "rate_limit", "global_rate_limit")
    backend = r.backend("shared").backend
    asked: list[str] = []
    decide = backend.decide

    async def counting(key: str, limit: Any) -> Any:
        asked.append(key)
        return await decide(key, limit)

    backend.decide = counting  # type: ignore[method-assign]
    assert (await r.handler(make_exchange())).status == 200
    for _ in range(3):
        refused = await r.handler(make_exchange())
        assert (refused.headers.get("ratelimit-policy") or "").startswith('"local"')
    assert asked == ["test"]


@shows("global_rate_limit", "concurrency")
async def test_a_refused_call_never_holds_a_slot() -> None:
    """A call the global limit refuses gets its 429 even while every slot is taken, and never
    takes one."""
    inside = asyncio.Event()
    release = asyncio.Event()

    async def hold(attempt: int) -> None:
        inside.set()
        await release.wait()

    upstream = {
        "url": URL,
        "global_rate_limit": {"backend": "shared", **ONE_CALL},
        "concurrency": {"max_in_flight": 1},
    }
    r = route(upstream, Upstream(on_attempt=hold), config=SHARED_BACKEND)
    in_order(r, "global_rate_limit", "concurrency")
    first = asyncio.create_task(r.call(make_exchange()))
    await asyncio.wait_for(inside.wait(), 5)
    limiter = r.shared(LIMITER)
    assert limiter.in_flight == 1
    refused = await asyncio.wait_for(r.handler(make_exchange()), 5)
    assert decided(refused) == "rate_limited"  # not "overloaded": it never asked for a slot
    assert limiter.in_flight == 1
    release.set()
    assert (await asyncio.wait_for(first, 5)).status == 200
    assert limiter.in_flight == 0


@shows("concurrency", "timeout")
async def test_a_queued_wait_is_not_the_upstreams_deadline() -> None:
    """A call that waited in the queue for a slot still has its whole deadline for the upstream."""
    slow = Upstream()

    async def first_is_slow(attempt: int) -> None:
        if attempt == 1:
            await asyncio.sleep(0.3)  # the first call's upstream takes 0.3 s

    slow.on_attempt = first_is_slow
    upstream = {"url": URL, "concurrency": {"max_in_flight": 1, "queue": 1, "max_wait": "5s"}}
    r = route(upstream, slow)
    in_order(r, "concurrency", "timeout")
    first = asyncio.create_task(r.call(make_exchange()))
    await eventually(lambda: len(slow.sent) == 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    # this call's own deadline (100 ms) is shorter than its wait for the slot (about 0.3 s)
    queued = await asyncio.wait_for(
        r.handler(make_exchange(headers={"x-sidecar-timeout": "100ms"})), 5
    )
    assert loop.time() - started > 0.1
    assert queued.status == 200, decided(queued)
    assert (await asyncio.wait_for(first, 5)).status == 200


# --- resilience: deadline, retries, breaker ----------------------------------------------------


@shows("concurrency", "retry")
async def test_one_app_call_holds_one_slot_whatever_its_retries() -> None:
    """A retried call keeps its slot between attempts: another call cannot slip in and then
    make the retry wait or fail for want of a slot."""
    calls: list[asyncio.Task[Response]] = []
    up = Upstream(statuses=[503, 200])

    def other_call_arrives(attempt: int) -> None:
        if attempt == 1:  # it runs as soon as this call waits for its retry
            calls.append(asyncio.create_task(r.call(make_exchange())))

    up.on_attempt = other_call_arrives
    upstream = {"url": URL, "concurrency": {"max_in_flight": 1}, "retry": QUICK_RETRIES}
    r = route(upstream, up)
    in_order(r, "concurrency", "retry")
    assert (await asyncio.wait_for(r.handler(make_exchange()), 5)).status == 200
    (other,) = calls
    assert decided(await asyncio.wait_for(other, 5)) == "overloaded"
    assert len(up.sent) == 2  # both attempts of the first call, none of the other


@shows("timeout", "retry")
async def test_the_deadline_bounds_every_attempt_and_every_backoff() -> None:
    """A retried slow upstream answers within the timeout, and no wait runs past it."""
    hung = Upstream(latency=5.0)  # every attempt is cut by the per-try timeout
    retries = {**QUICK_RETRIES, "attempts": 10, "per_try_timeout": "100ms"}
    no_breaker = {"enabled": False}  # so that only the deadline can end the retries
    r = route(
        {"url": URL, "timeout": "250ms", "retry": retries, "circuit_breaker": no_breaker}, hung
    )
    in_order(r, "timeout", "retry")
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await asyncio.wait_for(r.handler(make_exchange()), 5)
    assert loop.time() - started < 0.25 + 0.4  # ten attempts would take a second
    assert decided(resp) == "upstream_timeout"
    assert 2 <= len(hung.sent) <= 3  # retried, within the deadline
    # an upstream asking to wait past the deadline gets its answer back at once
    busy = Upstream(statuses=[503], headers={"retry-after": "5"})
    r = route({"url": URL, "timeout": "250ms", "retry": retries}, busy)
    started = loop.time()
    resp = await asyncio.wait_for(r.handler(make_exchange()), 5)
    assert loop.time() - started < 0.25
    assert (resp.status, decided(resp), len(busy.sent)) == (503, None, 1)
    skipped = {"upstream": "test", "route": "test", "reason": "retry_after"}
    assert counted(r, "sidecar_retries_skipped_total", **skipped) == 1


@shows("retry", "circuit_breaker")
async def test_every_attempt_passes_the_breaker() -> None:
    """Each attempt counts toward opening the breaker, and an open breaker ends the retries."""
    failing = Upstream(statuses=[503])
    upstream = {
        "url": URL,
        "retry": {**QUICK_RETRIES, "attempts": 5},
        "circuit_breaker": {"consecutive_failures": 3},
    }
    r = route(upstream, failing)
    in_order(r, "retry", "circuit_breaker")
    resp = await asyncio.wait_for(r.handler(make_exchange()), 5)
    assert len(failing.sent) == 3  # the third failed attempt opened it
    assert (resp.status, decided(resp)) == (503, "circuit_open")


@shows("timeout", "fault")
async def test_an_injected_delay_counts_against_the_calls_deadline() -> None:
    """An injected delay longer than the timeout ends as a slow upstream would: a 504 in time."""
    upstream = Upstream()
    fault = {"delay": {"duration": "5s"}}
    r = route({"url": URL, "timeout": "100ms", "fault": fault}, upstream)
    in_order(r, "timeout", "fault")
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await asyncio.wait_for(r.handler(make_exchange()), 5)
    assert loop.time() - started < 1.0
    assert (resp.status, decided(resp), len(upstream.sent)) == (504, "upstream_timeout", 0)


@shows("fault", "retry")
async def test_an_injected_abort_consumes_no_retry() -> None:
    """An injected 503 reaches the app at once: it is not retried and takes no retry budget."""
    upstream = Upstream()
    r = route({"url": URL, "retry": QUICK_RETRIES, "fault": {"abort": {"status": 503}}}, upstream)
    in_order(r, "fault", "retry")
    resp = await asyncio.wait_for(r.handler(make_exchange()), 5)
    assert (resp.status, decided(resp), len(upstream.sent)) == (503, "fault_injected", 0)
    assert counted(r, "sidecar_retries_total", upstream="test", route="test", condition="503") == 0


@shows("fault", "circuit_breaker")
async def test_an_injected_abort_never_trips_the_real_breaker() -> None:
    """Many injected aborts leave the upstream's breaker closed: real calls still flow after."""
    upstream = Upstream()
    breaker = {"consecutive_failures": 2}
    fault = {"abort": {"status": 503}}
    r = route({"url": URL, "circuit_breaker": breaker, "fault": fault}, upstream)
    in_order(r, "fault", "circuit_breaker")
    for _ in range(5):
        resp = await asyncio.wait_for(r.handler(make_exchange()), 5)
        assert decided(resp) == "fault_injected"
    assert r.shared(BREAKER).describe()["state"] == "closed"


# --- attempt: credential, CLIENT span, configured headers --------------------------------------


@shows("circuit_breaker", "auth")
async def test_an_open_breaker_refuses_before_a_token_is_fetched() -> None:
    """While the breaker is open no credential is taken (no token endpoint load, no token used)."""
    upstream = {
        "url": URL,
        "auth": {"type": "rotating"},
        "retry": {**QUICK_RETRIES, "attempts": 3},
        "circuit_breaker": {"consecutive_failures": 1},
    }
    r = route(upstream, Upstream(statuses=[503]))
    in_order(r, "circuit_breaker", "auth")
    tokens: RotatingToken = r.shared(PROVIDER)
    first = await asyncio.wait_for(r.handler(make_exchange()), 5)
    assert decided(first) == "circuit_open"  # its retry met the breaker its first attempt opened
    second = await asyncio.wait_for(r.handler(make_exchange()), 5)
    assert decided(second) == "circuit_open"
    assert tokens.taken == ["Bearer t1"]  # the first attempt's, and no other


@shows("retry", "auth")
async def test_every_attempt_gets_a_credential_taken_when_it_is_sent() -> None:
    """A token renewed between two attempts is the one the next attempt carries."""
    tokens: list[RotatingToken] = []

    def renew(attempt: int) -> None:
        tokens[0].current += 1  # renewed while this attempt is with the upstream

    up = Upstream(statuses=[503, 503, 200], on_attempt=renew)
    upstream = {"url": URL, "auth": {"type": "rotating"}, "retry": QUICK_RETRIES}
    r = route(upstream, up)
    in_order(r, "retry", "auth")
    tokens.append(r.shared(PROVIDER))
    assert (await asyncio.wait_for(r.handler(make_exchange()), 5)).status == 200
    assert [h.get("authorization") for h in up.sent] == ["Bearer t1", "Bearer t2", "Bearer t3"]
    assert tokens[0].taken == ["Bearer t1", "Bearer t2", "Bearer t3"]


@shows("retry", "upstream_span")
async def test_each_attempt_is_its_own_client_span(tracing: Tracing) -> None:
    """A retried call shows as sibling CLIENT spans, one per attempt, each the upstream's parent."""
    up = Upstream(statuses=[503, 503, 200])
    r = route({"url": URL, "retry": QUICK_RETRIES}, up, tracing=tracing)
    in_order(r, "retry", "upstream_span")
    complete(await asyncio.wait_for(r.handler(make_exchange()), 5))
    (server,) = spans(tracing, SpanKind.SERVER)
    clients = spans(tracing, SpanKind.CLIENT)
    assert [s.attributes["sidecar.attempt"] for s in clients if s.attributes] == [1, 2, 3]
    assert {s.parent.span_id for s in clients if s.parent} == {server.context.span_id}
    sent = [(h.get("traceparent") or "").split("-")[2] for h in up.sent]
    assert sent == [f"{s.context.span_id:016x}" for s in clients]


@shows("auth", "upstream_span")
async def test_the_client_span_times_the_request_as_sent(tracing: Tracing) -> None:
    """The CLIENT span starts once the credential is on the request: it times the upstream, not
    the token fetch, and the request it propagates to is the one the upstream gets."""
    up = Upstream()
    r = route({"url": URL, "auth": {"type": "rotating"}}, up, tracing=tracing)
    in_order(r, "auth", "upstream_span")
    tokens: RotatingToken = r.shared(PROVIDER)
    complete(await asyncio.wait_for(r.handler(make_exchange()), 5))
    (client,) = spans(tracing, SpanKind.CLIENT)
    assert client.start_time is not None and client.start_time >= tokens.taken_ns[0]
    (sent,) = up.sent
    assert sent.get("authorization") == "Bearer t1"
    assert (sent.get("traceparent") or "").split("-")[2] == f"{client.context.span_id:016x}"


@shows("upstream_span", "request_headers")
async def test_a_traceparent_set_by_config_still_wins(tracing: Tracing) -> None:
    """An operator who configures ``traceparent`` for an upstream gets exactly that value sent."""
    configured = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    up = Upstream()
    upstream = {"url": URL, "request_headers": {"traceparent": configured}}
    r = route(upstream, up, tracing=tracing)
    in_order(r, "upstream_span", "request_headers")
    complete(await asyncio.wait_for(r.handler(make_exchange()), 5))
    assert spans(tracing, SpanKind.CLIENT)  # the span was made, and its header replaced
    assert up.sent[0].get_all("traceparent") == [configured]
