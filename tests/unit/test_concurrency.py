"""Load shedding: the concurrency limiter and its filter, with exact counts and a fake timer."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from sidecar.api import RouteContext, SharedState
from sidecar.api.shared import SharedStateBuilder
from sidecar.config.policies import ConcurrencyPolicy
from sidecar.errors import Overloaded
from sidecar.exchange import Exchange, Response
from sidecar.filters import concurrency, rescue
from sidecar.resilience.concurrency import ConcurrencyLimiter
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import make_exchange, make_route_context


class Timers:
    """A fake ``call_later``: timers fire when the test says so."""

    def __init__(self) -> None:
        self.pending: list[Timer] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> Timer:
        t = Timer(self, delay, callback)
        self.pending.append(t)
        return t

    def fire_all(self) -> None:
        for t in list(self.pending):
            t.callback()
        self.pending.clear()


@dataclasses.dataclass
class Timer:
    timers: Timers
    delay: float
    callback: Callable[[], None]

    def cancel(self) -> None:
        if self in self.timers.pending:
            self.timers.pending.remove(self)


class Gate:
    """A call_next that holds every call until opened; records the order calls reached it."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.reached: list[str] = []

    async def __call__(self, exchange: Exchange) -> Response:
        self.reached.append(exchange.path)
        await self.open.wait()
        return Response(200)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def limiter(timers: Timers | None = None, **policy: Any) -> ConcurrencyLimiter:
    return ConcurrencyLimiter("pay", ConcurrencyPolicy(**policy), call_later=timers)


def test_slots_up_to_the_limit_then_none() -> None:
    """max_in_flight calls get a slot; the next does not until one is given back."""
    lim = limiter(max_in_flight=3)
    assert [lim.try_acquire() for _ in range(4)] == [True, True, True, False]
    lim.release()
    assert lim.try_acquire() and lim.in_flight == 3


def holding(ctx: RouteContext, lim: ConcurrencyLimiter) -> RouteContext:
    """``ctx`` whose upstream already holds ``lim`` (as a live sidecar would keep it)."""
    shared = SharedStateBuilder(SharedState())
    shared.share(concurrency.LIMITER, ctx.upstream_name, ctx.upstream.concurrency, lambda: lim)
    return dataclasses.replace(ctx, shared_state=shared)


async def test_past_the_limit_calls_are_shed_at_once_with_exact_counts() -> None:
    """N+k concurrent calls with max_in_flight N: exactly k get 503 overloaded, immediately."""
    m = Metrics()
    ctx = make_route_context(
        {"url": "http://127.0.0.1:9", "concurrency": {"max_in_flight": 4}}, name="pay", metrics=m
    )
    f = concurrency.factory(ctx)
    assert f is not None
    gate = Gate()
    tasks = [asyncio.create_task(f(make_exchange(path=f"/{i}"), gate)) for i in range(7)]
    await settle()
    shed = [t for t in tasks if t.done()]
    assert len(shed) == 3 and len(gate.reached) == 4
    for t in shed:
        e = t.exception()
        assert isinstance(e, Overloaded) and e.status == 503 and e.code == "overloaded"
        assert dict(e.headers) == {"retry-after": "1"}
    gate.open.set()
    results = await asyncio.gather(*[t for t in tasks if t not in shed])
    assert [r.status for r in results] == [200] * 4
    labels = {"upstream": "pay", "reason": "limit"}
    assert m.registry.get_sample_value("sidecar_overloaded_total", labels) == 3.0
    # every slot came back
    g = await f(make_exchange(), gate)
    assert g.status == 200


async def test_a_slot_is_given_back_when_the_call_fails_or_is_cancelled() -> None:
    """Errors and app disconnects never leak a slot (or the upstream would look full forever)."""
    ctx = make_route_context({"url": "http://127.0.0.1:9", "concurrency": {"max_in_flight": 1}})
    shared = SharedStateBuilder(SharedState())
    ctx = dataclasses.replace(ctx, shared_state=shared)
    f = concurrency.factory(ctx)
    assert f is not None
    lim = shared.build().get(concurrency.LIMITER, ctx.upstream_name)
    assert isinstance(lim, ConcurrencyLimiter)

    async def boom(exchange: Exchange) -> Response:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await f(make_exchange(), boom)
    gate = Gate()
    t = asyncio.create_task(f(make_exchange(), gate))
    await settle()
    assert lim.in_flight == 1
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert lim.in_flight == 0


async def test_a_queue_holds_callers_in_arrival_order_and_sheds_past_its_size() -> None:
    """With queue 3, three callers wait (served first come, first served); the fourth is shed."""
    lim = limiter(max_in_flight=2, queue=3, max_wait="5s")
    f = concurrency.factory(holding(make_route_context({"url": "http://127.0.0.1:9"}), lim))
    assert f is not None
    gate = Gate()
    tasks = []
    for i in range(6):
        tasks.append(asyncio.create_task(f(make_exchange(path=f"/{i}"), gate)))
        await settle()  # arrival order is the order they were started
    assert gate.reached == ["/0", "/1"]
    assert (lim.in_flight, lim.queued) == (2, 3)
    assert isinstance(tasks[5].exception(), Overloaded)
    assert lim.shed == {"limit": 1, "max_wait": 0}
    gate.open.set()
    results = await asyncio.gather(*tasks[:5])
    assert [r.status for r in results] == [200] * 5
    assert gate.reached == ["/0", "/1", "/2", "/3", "/4"]
    assert (lim.in_flight, lim.queued) == (0, 0)


async def test_a_queued_call_is_shed_after_max_wait() -> None:
    """Nobody waits longer than max_wait: then 503 overloaded, counted as `max_wait`."""
    timers = Timers()
    lim = limiter(timers, max_in_flight=1, queue=2, max_wait="250ms")
    assert lim.try_acquire()
    waiters = [asyncio.create_task(lim.wait()) for _ in range(2)]
    await settle()
    assert lim.queued == 2 and [t.delay for t in timers.pending] == [0.25, 0.25]
    timers.fire_all()
    for w in waiters:
        with pytest.raises(Overloaded, match="within 0.25s"):
            await w
    assert lim.shed == {"limit": 0, "max_wait": 2}
    assert (lim.in_flight, lim.queued) == (1, 0)
    lim.release()
    assert lim.in_flight == 0


async def test_a_slot_handed_over_stops_the_waiters_timer() -> None:
    """A waiter that got its slot in time is not shed by its timer afterwards."""
    timers = Timers()
    lim = limiter(timers, max_in_flight=1, queue=1, max_wait="1s")
    assert lim.try_acquire()
    w = asyncio.create_task(lim.wait())
    await settle()
    lim.release()  # hands the slot over
    await w
    assert timers.pending == [] and lim.in_flight == 1 and lim.shed["max_wait"] == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_passes_on_a_slot_it_was_given() -> None:
    """An app that hangs up while queued frees its place, and a slot given to it moves on."""
    timers = Timers()
    lim = limiter(timers, max_in_flight=1, queue=3, max_wait="1s")
    assert lim.try_acquire()
    a, b, c = (asyncio.create_task(lim.wait()) for _ in range(3))
    await settle()
    a.cancel()
    await settle()
    assert lim.queued == 2
    lim.release()  # goes to b
    b.cancel()  # b is cancelled before it could run with the slot: it passes it on to c
    await settle()
    await c
    assert a.cancelled() and b.cancelled()
    assert (lim.in_flight, lim.queued) == (1, 0)
    lim.release()
    assert lim.in_flight == 0


async def test_describe_and_gauges_show_slots_queue_and_sheds() -> None:
    """/upstreams and the scrape-time gauges show what the limiter is doing right now."""
    timers = Timers()
    lim = limiter(timers, max_in_flight=1, queue=1, max_wait="2s")
    lim.try_acquire()
    w = asyncio.create_task(lim.wait())
    await settle()
    with pytest.raises(Overloaded):
        await lim.wait()
    assert lim.describe() == {
        "max_in_flight": 1,
        "in_flight": 1,
        "shed": {"limit": 1, "max_wait": 0},
        "queue": {"size": 1, "waiting": 1, "max_wait_s": 2.0},
    }
    assert {name: v for name, _, v in lim.gauges()} == {
        "sidecar_concurrency_in_flight": 1.0,
        "sidecar_concurrency_queued": 1.0,
        "sidecar_concurrency_limit": 1.0,
    }
    lim.release()
    await w
    assert "queue" not in limiter(max_in_flight=5).describe()


def test_disabled_leaves_the_chain_and_a_queue_needs_a_bounded_wait() -> None:
    """`enabled: false` costs nothing; a queue never waits forever (max_wait > 0)."""
    ctx = make_route_context({"url": "http://127.0.0.1:9", "concurrency": {"enabled": False}})
    assert concurrency.factory(ctx) is None
    with pytest.raises(ValueError, match="must be longer than 0s"):
        ConcurrencyPolicy(queue=10, max_wait=0)


async def test_shed_calls_answer_503_overloaded_through_rescue() -> None:
    """The app sees who decided: `x-sidecar-error: overloaded` and `Retry-After: 1`."""
    lim = limiter(max_in_flight=1)
    ctx = holding(make_route_context({"url": "http://127.0.0.1:9"}), lim)
    f = concurrency.factory(ctx)
    assert f is not None
    lim.try_acquire()
    resp = await rescue.factory(ctx)(make_exchange(), lambda ex: f(ex, Gate()))
    assert (resp.status, resp.headers.get("x-sidecar-error")) == (503, "overloaded")
    assert resp.headers.get("retry-after") == "1"
