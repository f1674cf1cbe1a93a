"""What every fuzz target shares: the failure it raises, a fresh bounded event loop per input,
an in-memory transport, and the log records that mean a safety net caught a bug.

A target is a plain function taking ``bytes``. It returns when the input was handled as the
code documents (answered, refused, reported), and raises :class:`PropertyBroken` when a property
fails: an undocumented exception, an input that takes longer than its bound, a buffer past its
cap, a refused request that reached the upstream stub, a task left running. Any other exception
escaping a target is a crash of the code under test. Not here: the targets themselves
(:mod:`tests.fuzz.targets`) or how inputs are found (atheris, hypothesis, the corpus replay).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

#: one input, end to end, on a fresh event loop: no input may take longer. atheris raises it
#: (``set_input_seconds``): its instrumentation makes the code under test many times slower.
INPUT_SECONDS = 1.0


def set_input_seconds(seconds: float) -> None:
    global INPUT_SECONDS
    INPUT_SECONDS = seconds


def input_seconds() -> float:
    """The bound on one input, as set now."""
    return INPUT_SECONDS


class PropertyBroken(AssertionError):
    """An input broke a property the fuzzed code promises (the message says which)."""


class _ErrorRecords(logging.Handler):
    """Collects ERROR records: the sidecar logs one when a catch-all caught a bug."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def no_error_logged(*names: str) -> Iterator[None]:
    """Raise :class:`PropertyBroken` if any of the ``names`` loggers logs an ERROR meanwhile.

    ``log.exception("unexpected error ...")`` keeps the process alive, but it is still a bug
    that an input reached it.
    """
    handler = _ErrorRecords()
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.propagate, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.propagate = False  # the fuzzer's output stays readable; the records are kept here
        if lg.level == logging.NOTSET or lg.level > logging.ERROR:
            lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, (propagate, level) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.propagate = propagate
            lg.setLevel(level)
    if handler.records:
        first = handler.records[0]
        detail = first.getMessage()
        if first.exc_info and first.exc_info[1] is not None:
            exc = first.exc_info[1]
            raise PropertyBroken(
                f"{first.name} logged an error ({type(exc).__name__}): {detail}: {exc}"
            ) from exc
        raise PropertyBroken(f"{first.name} logged an error: {detail}")


def run_bounded(
    main: Callable[[], Coroutine[Any, Any, None]], seconds: float | None = None
) -> None:
    """Run ``main()`` on a fresh event loop; it must finish within ``seconds`` (the input
    bound by default) and leave no task running (a task left after its connection is gone is a
    leak)."""
    if seconds is None:
        seconds = INPUT_SECONDS
    loop = asyncio.new_event_loop()
    started = time.perf_counter()
    try:
        try:
            loop.run_until_complete(asyncio.wait_for(main(), seconds))
        except TimeoutError:
            raise PropertyBroken(f"an input took longer than {seconds:g}s") from None
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if left:
            # a compiled coroutine has no __qualname__: its type names it
            coros = [t.get_coro() for t in left]
            names = ", ".join(sorted({getattr(c, "__qualname__", type(c).__name__) for c in coros}))
            raise PropertyBroken(f"tasks still running after the connection closed: {names}")
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    # a CPU-bound stall inside one callback cannot be interrupted by wait_for: measure it
    elapsed = time.perf_counter() - started
    if elapsed > seconds * 2:
        raise PropertyBroken(f"an input took {elapsed:.2f}s (bound {seconds:g}s)")


async def settle(done: Callable[[], bool], turns: int = 200) -> None:
    """Let callbacks and tasks run until ``done()`` or ``turns`` loop turns passed."""
    for _ in range(turns):
        if done():
            return
        await asyncio.sleep(0)


def chunks(data: bytes, control: int) -> Iterator[bytes]:
    """``data`` cut as TCP might deliver it: one read, fixed small pieces, or uneven pieces
    (``control`` picks which), so a split at any byte is tried."""
    mode = control % 4
    if mode == 0 or len(data) <= 1:
        if data:
            yield data
        return
    if mode == 1:
        size = 1 + (control >> 2) % 7
        for i in range(0, len(data), size):
            yield data[i : i + size]
        return
    at, step = 0, 1 + (control >> 2)
    while at < len(data):
        size = 1 + (step * 2654435761 + at) % (64 if mode == 2 else 4096)
        yield data[at : at + size]
        at += size


class MemoryTransport(asyncio.Transport):
    """A transport that keeps what was written and obeys pause/resume; no socket.

    ``close`` and ``abort`` deliver ``connection_lost`` on the next loop turn, as asyncio's do.
    """

    def __init__(self, protocol: asyncio.BaseProtocol, *, half_close: bool = True) -> None:
        super().__init__()
        self.protocol = protocol
        self.out = bytearray()
        self.closed = False
        self.reading = True
        self.eof_written = False
        self.half_close = half_close
        #: ``connection_lost`` was delivered (a turn after ``close``)
        self.lost = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.eof_written:
            raise PropertyBroken("written after write_eof")
        self.out += data

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return self.half_close

    def write_eof(self) -> None:
        self.eof_written = True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self._lost)

    def _lost(self) -> None:
        self.lost = True
        self.protocol.connection_lost(None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return 0
