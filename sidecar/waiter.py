"""Waking the task that awaits a Future in the loop callback that settles it, not a pass later.

An asyncio Future wakes the task awaiting it through the event loop: ``set_result`` schedules the
task's next step with ``call_soon``, and the loop runs it on its next pass, through a handle and a
queue. The HTTP/1.1 path waits this way twice per request (an app connection's worker waiting for
the next request, a call waiting for the upstream's answer); each of those wake-ups cost about
1,500 instructions in the compiled build beyond the task's own work.

:func:`set_result_now` settles a Future and, when no task is running (a protocol's
``data_received``, called by the loop) and the one callback waiting on it is a task's wake-up, runs
that wake-up right away, in the task's context, as the loop would have: the task steps before
the callback returns. Whoever calls it must have nothing left to do in that callback that the
task's step could see half-done: it is the callback's last act. Anywhere else (inside a task,
several callbacks) it is ``set_result``.

The Future stays a Future: cancellation, ``asyncio.timeout`` and everything else that works on one
work the same. What this reads of it is ``_callbacks``, which the C and the Python Future both
have; without it (another asyncio), the wake goes through the loop.

The waits on the data path make their Futures with :func:`new_future`, ``asyncio.Future(loop=
loop)``, given the loop their owner already holds. Never ``asyncio.Future()`` with no loop: on
Python 3.11 finding the running loop costs a ``getpid()`` system call (the C check that the loop
was not inherited through ``fork``), about 180 ns here, which an instruction count under
callgrind does not see. Made with the loop, a Future costs about 135 ns against 235 ns without,
and ``loop.create_future()`` on uvloop about 140 ns (``python -m timeit`` on this machine).

Reading ``_callbacks`` builds a list and a tuple each time. Whoever settles the Futures one task
waits on, one after another, may keep that task's wake-up in a :class:`Wake`: the next Future the
same task waits on is then woken by removing the kept callback (a task's wake-ups compare equal)
instead. Should that Future have other callbacks too, they are scheduled as ``set_result``
schedules them, and the task's step runs first.

Not here: which waits use it (the app connection's worker, the upstream connection's head).
"""

from __future__ import annotations

__all__ = ["RunningLoop", "Wake", "current_task", "new_future", "set_result_now"]

import asyncio
import sys
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

T = TypeVar("T")


def _current_task_py(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
    return asyncio.current_task(loop)


def _current_task_reader() -> Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]:
    if sys.version_info < (3, 12):
        # Python 3.11's asyncio.current_task is a Python function over this C dict (a frame
        # per call); reading the dict is all it does. From 3.12 the function itself is C.
        try:
            from _asyncio import _current_tasks  # type: ignore[attr-defined]
        except ImportError:  # asyncio without its C part
            return _current_task_py
        reader: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]
        reader = _current_tasks.get
        return reader
    return _current_task_py


#: the task running on a loop, if any: ``asyncio.current_task(loop)`` at the cost of a lookup
current_task: Final = _current_task_reader()


class RunningLoop:
    """The running loop, for code called once per request that holds no object of the loop's:
    ``asyncio.get_running_loop()`` costs a ``getpid()`` system call per call on Python 3.11.

    The loop found last is the running one while it has a task running (a stopped or closed
    loop has none), checked with a dict lookup; otherwise it is found again. One event loop
    per process, as the sidecar runs: with loops running in two threads at once, the check
    could pass for the other thread's loop."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> asyncio.AbstractEventLoop:
        loop = self.loop
        if loop is None or current_task(loop) is None:
            loop = self.loop = asyncio.get_running_loop()
        return loop

    def task(self) -> asyncio.Task[Any] | None:
        """The task running now (``None`` in a loop callback), its loop found as :meth:`get`
        finds it and held in :attr:`loop`: one lookup where ``get`` and ``current_task``
        would take two."""
        loop = self.loop
        task = current_task(loop) if loop is not None else None
        if task is None:
            loop = self.loop = asyncio.get_running_loop()
            task = current_task(loop)
        return task


#: read once: ``asyncio.Future`` is an attribute lookup on the module at every call
_Future: Final = asyncio.Future


def new_future(loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    """A Future of ``loop``, the running loop: what ``loop.create_future()`` returns, made for a
    little less (see the module docstring)."""
    return _Future(loop=loop)


class Wake:
    """One task's wake-up callback and its context, as read from a Future it waited on (see
    the module docstring)."""

    __slots__ = ("callback", "context")

    def __init__(self) -> None:
        self.callback: Callable[[Any], object] | None = None
        self.context: Any = None


def set_result_now(
    fut: asyncio.Future[T], value: T, loop: asyncio.AbstractEventLoop, kept: Wake | None = None
) -> None:
    """``fut.set_result(value)``, and the waiting task's step now if it can run here (see the
    module docstring); ``loop`` is ``fut``'s. ``kept``: the wake-up of the task that waited on
    the last Future settled here, if it is likely the one waiting now (and kept for the next)."""
    if current_task(loop) is not None:
        fut.set_result(value)  # inside a task, another task's step cannot start
        return
    if kept is not None:
        kept_wake = kept.callback
        if kept_wake is not None and fut.remove_done_callback(kept_wake):
            fut.set_result(value)  # any other callback is scheduled as usual
            kept.context.run(kept_wake, fut)
            return
    found: object = getattr(fut, "_callbacks", None)
    if type(found) is not list or len(found) != 1:
        fut.set_result(value)  # nobody waits yet, or more than a task does
        return
    # a list, of one (callback, context) pair: read as such, not through generic item lookups
    callbacks = cast(list[tuple[Callable[[Any], object], Any]], found)
    wake, context = callbacks[0]
    fut.remove_done_callback(wake)
    fut.set_result(value)  # no callback left to schedule
    if kept is not None:
        kept.callback = wake
        kept.context = context
    context.run(wake, fut)
