"""``set_result_now``: the task awaiting a Future steps in the very callback that settles it.

What the app connection's worker and every upstream call rely on: settled "now" from a loop
callback, the awaiting task runs before the callback returns, in the task's own context; from
inside a task, or with more than one callback waiting, the Future is settled as ever and wakes
through the loop. Cancellation and ``asyncio.timeout`` are a Future's own.
"""

from __future__ import annotations

import asyncio
import contextvars

from sidecar.waiter import RunningLoop, Wake, current_task, set_result_now

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="loop")


async def _settled_from_a_callback(now: bool, timeout: float | None = None) -> list[str]:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    order: list[str] = []

    async def waiting() -> None:
        VAR.set("task")
        if timeout is None:
            got = await fut
        else:
            async with asyncio.timeout(timeout):
                got = await fut
        order.append(f"resumed {got} in {VAR.get()} context")

    task = loop.create_task(waiting())
    await asyncio.sleep(0)  # the task now waits

    def callback() -> None:  # as the loop calls a protocol's data_received: no task runs
        assert current_task(loop) is None
        if now:
            set_result_now(fut, 7, loop)
        else:
            fut.set_result(7)
        order.append(f"callback done in {VAR.get()} context")

    loop.call_soon(callback)
    await asyncio.wait_for(task, 1)
    return order


async def test_settled_now_from_a_loop_callback_the_task_steps_before_the_callback_returns() -> (
    None
):
    """No pass through the loop: the task ran inside the callback, in its own context."""
    order = await _settled_from_a_callback(now=True)
    assert order == ["resumed 7 in task context", "callback done in loop context"]


async def test_a_future_settled_plainly_wakes_its_task_through_the_loop() -> None:
    """What the call above spares (and what happens without it)."""
    order = await _settled_from_a_callback(now=False)
    assert order == ["callback done in loop context", "resumed 7 in task context"]


async def test_a_wait_under_asyncio_timeout_is_woken_now_too() -> None:
    """``response_header_timeout`` waits with ``asyncio.timeout``: the same early wake."""
    order = await _settled_from_a_callback(now=True, timeout=5)
    assert order == ["resumed 7 in task context", "callback done in loop context"]


async def test_settled_now_from_inside_a_task_it_wakes_through_the_loop() -> None:
    """Inside a task, another task's step cannot start: the Future is settled as ever."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[str] = loop.create_future()
    order: list[str] = []

    async def waiting() -> None:
        order.append(await fut)

    task = loop.create_task(waiting())
    await asyncio.sleep(0)
    set_result_now(fut, "woken", loop)  # this test is itself a running task
    order.append("setter went on")
    await asyncio.wait_for(task, 1)
    assert order == ["setter went on", "woken"]


async def test_with_more_than_one_callback_every_one_runs_through_the_loop() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    seen: list[str] = []
    fut.add_done_callback(lambda f: seen.append(f"first {f.result()}"))
    fut.add_done_callback(lambda f: seen.append(f"second {f.result()}"))
    loop.call_soon(set_result_now, fut, 5, loop)
    for _ in range(5):
        await asyncio.sleep(0)
    assert seen == ["first 5", "second 5"]


async def test_a_future_nobody_awaits_yet_is_just_settled() -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    loop.call_soon(set_result_now, fut, 3, loop)
    assert await asyncio.wait_for(fut, 1) == 3


async def test_a_kept_wake_wakes_the_task_waiting_now_whichever_it_is() -> None:
    """Settled with a kept :class:`Wake`, the Futures one task waits on one after another wake
    it in the settling callback each time, in its own context; a Future another task waits on
    wakes that task, and never the kept one."""
    loop = asyncio.get_running_loop()
    kept = Wake()
    order: list[str] = []
    futs: list[asyncio.Future[int]] = [loop.create_future() for _ in range(4)]

    ready: list[asyncio.Future[None]] = [loop.create_future() for _ in range(2)]

    async def waiting(name: str, fs: list[asyncio.Future[int]], at: asyncio.Future[None]) -> None:
        VAR.set(name)
        at.set_result(None)  # this step goes on to wait on fs[0] before it yields
        for f in fs:
            order.append(f"{name} got {await f} in {VAR.get()} context")

    tasks = [
        loop.create_task(waiting("a", futs[:2], ready[0])),
        loop.create_task(waiting("b", futs[2:], ready[1])),
    ]
    await asyncio.wait_for(asyncio.gather(*ready), 1)  # both tasks now wait

    def settle(fut: asyncio.Future[int], value: int, done: asyncio.Future[None]) -> None:
        set_result_now(fut, value, loop, kept)
        owner = getattr(kept.callback, "__self__", None)  # a task's wake-up is bound to it
        order.append(f"settled {value}, kept {'a' if owner is tasks[0] else 'b'}'s")
        done.set_result(None)

    for value, fut in enumerate(futs, 1):
        done: asyncio.Future[None] = loop.create_future()
        loop.call_soon(settle, fut, value, done)  # a loop callback, as data_received is
        await asyncio.wait_for(done, 1)
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert order == [
        "a got 1 in a context",
        "settled 1, kept a's",
        "a got 2 in a context",  # woken through the kept wake-up
        "settled 2, kept a's",
        "b got 3 in b context",  # not a's: its wake-up is read, and kept
        "settled 3, kept b's",
        "b got 4 in b context",
        "settled 4, kept b's",
    ]


def test_on_uvloop_too() -> None:
    """The sidecar runs on uvloop where it is installed: its Futures are asyncio's, woken alike."""
    import uvloop

    loop = uvloop.new_event_loop()
    try:
        order = loop.run_until_complete(_settled_from_a_callback(now=True))
    finally:
        loop.close()
    assert order == ["resumed 7 in task context", "callback done in loop context"]


def test_running_loop_is_the_loop_running_now_even_after_another_loop_ran_and_closed() -> None:
    """What the gRPC upstream call and the timeout filters read once per call instead of
    ``get_running_loop()``: never a loop that ran before and stopped, whether asked from a task
    or a loop callback, for the loop (``get``) or the task (``task``)."""
    by_get, by_task = RunningLoop(), RunningLoop()

    async def from_a_task_and_a_callback() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        in_task = by_get.get() is loop
        assert by_task.task() is asyncio.current_task() and by_task.loop is loop
        seen: asyncio.Future[bool] = loop.create_future()
        loop.call_soon(
            lambda: seen.set_result(
                by_get.get() is loop and by_task.task() is None and by_task.loop is loop
            )
        )
        return in_task, await seen

    for _ in range(2):  # the second loop finds the first one held, stopped and closed
        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(from_a_task_and_a_callback()) == (True, True)
        finally:
            loop.close()
        assert by_get.loop is loop and by_task.loop is loop
