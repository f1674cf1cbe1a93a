"""The ``fault`` filter: injected delays and aborts, header-triggered faults, their bounds."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from pydantic import ValidationError

from sidecar.config.fault import FaultPolicy
from sidecar.errors import BadRequest
from sidecar.exchange import Exchange, Headers, Response
from sidecar.filters import fault, rescue
from sidecar.filters.fault import ActiveFaults, FaultInjected, make_fault
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import make_exchange, make_route_context

URL = "http://127.0.0.1:9"


class Upstream:
    """Answers 200 and keeps the headers each call carried."""

    def __init__(self) -> None:
        self.sent: list[Headers] = []

    async def __call__(self, exchange: Exchange) -> Response:
        self.sent.append(exchange.headers.copy())
        return Response(200, Headers([]), b"ok")


def ctx_with(fault_config: dict[str, Any] | None, **kw: Any) -> Any:
    upstream: dict[str, Any] = {"url": URL}
    if fault_config is not None:
        upstream["fault"] = fault_config
    return make_route_context(upstream, metrics=Metrics(), **kw)


def counted(ctx: Any, family: str, **labels: str) -> float:
    return float(ctx.metrics.registry.get_sample_value(family, labels) or 0.0)


def test_without_fault_config_the_filter_is_not_in_the_chain() -> None:
    """No ``fault`` section (or ``enabled: false``): the route pays nothing for the feature."""
    assert fault.factory(ctx_with(None)) is None
    off = {"enabled": False, "abort": {"status": 503}}
    assert fault.factory(ctx_with(off)) is None


async def test_an_abort_answers_without_calling_the_upstream() -> None:
    """A 100 % abort gives the app the configured status, marked as the sidecar's decision."""
    ctx = ctx_with({"abort": {"status": 502}})
    f = fault.factory(ctx)
    assert f is not None
    upstream = Upstream()
    with pytest.raises(FaultInjected) as raised:
        await f(make_exchange(), upstream)
    assert (raised.value.status, raised.value.code, upstream.sent) == (502, "fault_injected", [])
    labels = {"upstream": "test", "route": "test", "kind": "abort"}
    assert counted(ctx, "sidecar_faults_injected_total", **labels) == 1


async def test_an_abort_on_the_grpc_port_is_a_grpc_status() -> None:
    """On the gRPC port an injected abort ends with its gRPC status and x-sidecar-error."""
    ctx = ctx_with({"abort": {"status": 503, "grpc_status": "RESOURCE_EXHAUSTED"}}, front="grpc")
    f = fault.factory(ctx)
    assert f is not None
    answer = rescue.factory(ctx)
    resp = await answer(make_exchange(), lambda ex: f(ex, Upstream()))
    assert resp.trailers is not None
    assert resp.trailers.get("grpc-status") == "8"
    assert resp.trailers.get("x-sidecar-error") == "fault_injected"


async def test_an_http_abort_is_answered_like_every_sidecar_decision() -> None:
    """The app sees the status, ``x-sidecar-error: fault_injected`` and a one-line body."""
    ctx = ctx_with({"abort": {"status": 503}})
    f = fault.factory(ctx)
    assert f is not None
    resp = await rescue.factory(ctx)(make_exchange(), lambda ex: f(ex, Upstream()))
    assert (resp.status, resp.headers.get("x-sidecar-error")) == (503, "fault_injected")


async def test_a_delay_holds_the_call_then_sends_it() -> None:
    """A delay reaches the upstream late, and is counted as a delay."""
    ctx = ctx_with({"delay": {"duration": "50ms"}})
    f = fault.factory(ctx)
    assert f is not None
    upstream = Upstream()
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await f(make_exchange(), upstream)
    assert loop.time() - started >= 0.045
    assert (resp.status, len(upstream.sent)) == (200, 1)
    labels = {"upstream": "test", "route": "test", "kind": "delay"}
    assert counted(ctx, "sidecar_faults_injected_total", **labels) == 1


def _aborted_calls(seed: int, calls: int) -> list[int]:
    policy = FaultPolicy.model_validate({"abort": {"percent": 30, "status": 503}})
    f = make_fault(
        policy,
        ActiveFaults(),
        injected=lambda kind: lambda: None,
        skipped=lambda: None,
        rng=random.Random(seed),
    )
    aborted = []

    async def run() -> None:
        for i in range(calls):
            try:
                await f(make_exchange(), Upstream())
            except FaultInjected:
                aborted.append(i)

    asyncio.run(run())
    return aborted


def test_the_percent_picks_calls_from_a_seedable_source() -> None:
    """``percent`` faults about that share of calls, and one seed picks the same calls again."""
    first, again = _aborted_calls(7, 1000), _aborted_calls(7, 1000)
    assert first == again
    assert 230 <= len(first) <= 370
    assert _aborted_calls(8, 1000) != first


async def test_header_triggered_faults_are_chosen_by_the_app_and_never_forwarded() -> None:
    """With header_triggered the app's headers choose the fault; the upstream never sees them."""
    ctx = ctx_with({"header_triggered": True})
    f = fault.factory(ctx)
    assert f is not None
    upstream = Upstream()
    asked = {"x-sidecar-fault-delay-ms": "30", "x-other": "kept"}
    loop = asyncio.get_running_loop()
    started = loop.time()
    await f(make_exchange(headers=asked), upstream)
    assert loop.time() - started >= 0.025
    assert upstream.sent[0].get("x-sidecar-fault-delay-ms") is None
    assert upstream.sent[0].get("x-other") == "kept"
    with pytest.raises(FaultInjected) as raised:
        await f(make_exchange(headers={"x-sidecar-fault-abort-status": "429"}), upstream)
    assert raised.value.status == 429
    # percent 0: asked for, never due
    none = {"x-sidecar-fault-abort-status": "500", "x-sidecar-fault-percent": "0"}
    assert (await f(make_exchange(headers=none), upstream)).status == 200


async def test_fault_headers_are_ignored_but_stripped_unless_header_triggered() -> None:
    """Without header_triggered, the app cannot fault a call, and the headers still stay here."""
    ctx = ctx_with({"delay": {"duration": "1ms", "percent": 0}})
    f = fault.factory(ctx)
    assert f is not None
    upstream = Upstream()
    resp = await f(make_exchange(headers={"x-sidecar-fault-abort-status": "503"}), upstream)
    assert resp.status == 200
    assert upstream.sent[0].get("x-sidecar-fault-abort-status") is None


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-sidecar-fault-delay-ms", "5001"),  # over header_max_delay (5 s)
        ("x-sidecar-fault-delay-ms", "-1"),
        ("x-sidecar-fault-delay-ms", "soon"),
        ("x-sidecar-fault-abort-status", "200"),
        ("x-sidecar-fault-abort-status", "600"),
        ("x-sidecar-fault-percent", "101"),
        ("x-sidecar-fault-percent", "nan"),
    ],
)
async def test_fault_headers_out_of_bounds_are_refused(header: str, value: str) -> None:
    """A header asking for more than allowed is a 400, not silently clamped or ignored."""
    f = fault.factory(ctx_with({"header_triggered": True}))
    assert f is not None
    upstream = Upstream()
    with pytest.raises(BadRequest) as raised:
        await f(make_exchange(headers={header: value}), upstream)
    assert header in raised.value.detail
    assert not raised.value.close_connection
    assert upstream.sent == []


async def test_past_max_active_a_call_goes_through_unfaulted_and_is_counted() -> None:
    """A fault config never holds more than max_active calls; the others are sent as usual."""
    ctx = ctx_with({"delay": {"duration": "10s"}, "max_active": 1})
    f = fault.factory(ctx)
    assert f is not None
    held = asyncio.create_task(f(make_exchange(), Upstream()))
    try:
        for _ in range(1000):  # bounded: the held call enters its delay on the first turns
            if counted(
                ctx, "sidecar_faults_injected_total", upstream="test", route="test", kind="delay"
            ):
                break
            await asyncio.sleep(0)
        upstream = Upstream()
        resp = await asyncio.wait_for(f(make_exchange(), upstream), 1)
        assert (resp.status, len(upstream.sent)) == (200, 1)
        assert counted(ctx, "sidecar_faults_skipped_total", reason="max_active") == 1
    finally:
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held


@pytest.mark.parametrize(
    "bad",
    [
        {},  # nothing to inject
        {"abort": {"status": 302}},
        {"abort": {"status": 503, "grpc_status": "OK"}},
        {"delay": {"duration": "301s"}},
        {"delay": {"duration": "1s", "percent": 150}},
        {"header_triggered": True, "max_active": 0},
    ],
)
def test_a_fault_config_out_of_bounds_is_refused(bad: dict[str, Any]) -> None:
    """A fault section that would inject nothing, or more than allowed, fails at load time."""
    with pytest.raises(ValidationError):
        FaultPolicy.model_validate(
            {"header_triggered": True, **bad} if "max_active" in bad else bad
        )


def test_grpc_status_is_accepted_by_name_or_number() -> None:
    """``grpc_status`` is written as gRPC spells it, lower case, or as its number."""
    for given in ("UNAVAILABLE", "unavailable", 14, "14"):
        policy = FaultPolicy.model_validate({"abort": {"grpc_status": given}})
        assert policy.abort is not None and policy.abort.grpc_status == 14
