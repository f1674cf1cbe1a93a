"""The coarse deadline wheel behind `timeout` and `per_try_timeout`: on time, never early,
nothing left behind, and an app that leaves stays a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.errors import UpstreamTimeout
from sidecar.exchange import Exchange, Response
from sidecar.filters import timeout
from sidecar.resilience.deadlines import DeadlineWheel
from sidecar.testing import make_exchange, make_route_context, responder


async def sleeper(wheel: DeadlineWheel, deadline: float) -> tuple[bool, float]:
    """Register the current task, sleep until cancelled; (fired, loop time when cancelled)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    entry = wheel.add(loop, task, deadline)
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        fired = wheel.remove(entry)
        task.uncancel()
        return fired, loop.time()
    raise AssertionError("not cancelled")


async def test_deadlines_fire_in_order_never_early_and_at_most_a_tick_late() -> None:
    """Each call is cut within one tick after its own deadline, whatever the others' are."""
    wheel = DeadlineWheel(tick=0.01)
    now = asyncio.get_running_loop().time()
    offsets = [0.08, 0.02, 0.05, 0.02, 0.11]
    results = await asyncio.wait_for(asyncio.gather(*(sleeper(wheel, now + o) for o in offsets)), 5)
    for offset, (fired, at) in zip(offsets, results, strict=True):
        assert fired
        late = at - (now + offset)
        assert 0 <= late < 0.01 + 0.05, (offset, late)  # a tick, plus a busy test machine
    assert len(wheel) == 0


async def test_calls_that_end_in_time_leave_nothing_behind() -> None:
    """Thousands of calls that finish before their deadline cost no timer firing and no memory."""
    wheel = DeadlineWheel(tick=0.01)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    last = loop.time()
    for i in range(5000):
        last = loop.time() + 0.02 + i * 1e-5
        entry = wheel.add(loop, task, last)
        assert wheel.remove(entry) is False
    assert len(wheel) == 0
    assert wheel.buckets <= 1  # emptied buckets are dropped, but the newest one
    # until the timer has passed every deadline (it drops the buckets as it does): nothing
    # is cancelled
    async with asyncio.timeout(last - loop.time() + 5):
        while wheel.buckets:
            await asyncio.sleep(0.01)
    assert task.cancelling() == 0
    assert wheel.buckets == 0  # the timer passed them all: nothing held


async def test_the_timer_follows_an_earlier_deadline_added_later() -> None:
    """A short app deadline (`x-sidecar-timeout`) arriving after long ones still fires on time."""
    wheel = DeadlineWheel(tick=0.01)
    now = asyncio.get_running_loop().time()
    long = asyncio.ensure_future(sleeper(wheel, now + 5))
    await asyncio.sleep(0)
    fired, at = await asyncio.wait_for(sleeper(wheel, now + 0.03), 2)
    assert fired and at - now < 0.03 + 0.06
    long.cancel()
    assert (await long)[0] is False  # cancelled by us, not by its deadline


async def test_the_filter_leaves_the_task_usable_after_a_timeout() -> None:
    """After a 504 the connection's task is not left half-cancelled for the next request."""
    f = timeout.factory(make_route_context({"url": "http://127.0.0.1:9", "timeout": "20ms"}))

    async def hang(exchange: Exchange) -> Response:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    with pytest.raises(UpstreamTimeout):
        await f(make_exchange(), hang)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # would raise CancelledError if a cancel were still pending
    assert (await f(make_exchange(), responder(204))).status == 204


async def test_an_app_that_leaves_as_the_deadline_fires_stays_a_cancellation() -> None:
    """Two reasons to stop: the app's own cancellation wins, no 504 is made up for it."""
    f = timeout.factory(make_route_context({"url": "http://127.0.0.1:9", "timeout": "20ms"}))

    async def hang_then_app_leaves(exchange: Exchange) -> Response:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # the app's connection closed in the same instant
            raise
        raise AssertionError("unreachable")

    call = asyncio.ensure_future(f(make_exchange(), hang_then_app_leaves))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(call, 5)
    assert call.cancelled()


async def test_an_app_that_leaves_before_the_deadline_is_not_a_timeout() -> None:
    """Cancelling a call (the app hung up) is passed through untouched and unregistered."""
    f = timeout.factory(make_route_context({"url": "http://127.0.0.1:9", "timeout": "5s"}))
    started = asyncio.Event()

    async def hang(exchange: Exchange) -> Response:
        started.set()
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    call = asyncio.ensure_future(f(make_exchange(), hang))
    await asyncio.wait_for(started.wait(), 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_the_response_head_timeout_cuts_only_the_wait_it_bounds() -> None:
    """`response_header_timeout` on the deadline wheel: a head that comes in time is returned
    and leaves nothing behind; one that does not is an `UpstreamTimeout` at the limit, not
    before; an app that goes away first stays a cancellation."""
    from sidecar.adapters.http_adapter import _wait_head

    loop = asyncio.get_running_loop()
    wheel = DeadlineWheel(tick=0.01)
    answered: asyncio.Future[Response] = loop.create_future()
    loop.call_later(0.01, answered.set_result, Response(204))
    assert (await _wait_head(answered, 1.0, wheel)).status == 204
    assert len(wheel) == 0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0

    start = loop.time()
    with pytest.raises(UpstreamTimeout, match="response head"):
        await _wait_head(loop.create_future(), 0.05, wheel)
    assert loop.time() - start >= 0.05
    assert task.cancelling() == 0 and len(wheel) == 0

    waiting = asyncio.ensure_future(_wait_head(loop.create_future(), 5.0, wheel))
    async with asyncio.timeout(1):
        while len(wheel) == 0:  # until the wait is registered
            await asyncio.sleep(0)
    waiting.cancel()  # the app went away
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(wheel) == 0
