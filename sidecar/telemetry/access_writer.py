"""Where access-log lines go: batched to stdout by a writer thread, never blocking the event loop.

A line written through the stdlib ``logging`` machinery cost about 45 µs on the event loop (a
``LogRecord``, the formatter, a ``write`` and a ``flush`` per line). :class:`AccessLogWriter` takes
a finished JSON line (built by :mod:`sidecar.filters.access_log`), appends it to an in-memory batch
under a lock (a fraction of a µs) and a daemon thread writes the batch to file descriptor 1: when
it passes ``BATCH_BYTES``, at least every ``FLUSH_INTERVAL`` seconds, and at exit.

The batch is bounded: if stdout stops taking data (a full pipe nobody reads), the batch grows to
``MAX_BUFFERED`` and later lines are dropped and counted (``sidecar_access_log_dropped_total``,
and a warning on the sidecar's own log once stdout moves again), rather than growing memory or
stalling calls. Lines whose write failed (stdout closed) are counted the same way.

One writer per process (stdout is per process): :func:`configure_logging` installs it and
:func:`current` returns it; with none installed (the sidecar embedded as a library, unit tests)
the access log goes through the ``sidecar.access`` logger instead. Not here: what a line says.
"""

from __future__ import annotations

__all__ = [
    "BATCH_BYTES",
    "FLUSH_INTERVAL",
    "MAX_BUFFERED",
    "AccessLogWriter",
    "current",
    "dropped_total",
    "install",
]

import logging
import os
import threading
from collections.abc import Callable
from typing import Final

#: A batch this large is handed to the writer thread at once rather than at the next interval.
BATCH_BYTES: Final = 64 * 1024
#: A line waits at most about this long (seconds) before it is written.
FLUSH_INTERVAL: Final = 0.1
#: Bytes waiting to be written past which new lines are dropped (stdout is not keeping up).
MAX_BUFFERED: Final = 4 * 1024 * 1024
#: How long exiting waits for the last lines to be written (stdout may be stuck).
CLOSE_TIMEOUT: Final = 2.0

log = logging.getLogger("sidecar.telemetry")


def _stdout_write(data: memoryview) -> int:
    # typed as what it is given: a compiled build checks the declared type, and ``bytes``
    # would refuse the memoryview of a partly written batch
    return os.write(1, data)


class AccessLogWriter:
    """Batches lines and writes them from a thread; ``write`` is all the event loop pays."""

    def __init__(
        self,
        write: Callable[[memoryview], int] = _stdout_write,
        *,
        batch_bytes: int = BATCH_BYTES,
        interval: float = FLUSH_INTERVAL,
        max_buffered: int = MAX_BUFFERED,
    ) -> None:
        self._out = write
        self._batch_bytes = batch_bytes
        self._interval = interval
        self._max = max_buffered
        self._lines: list[str] = []
        self._size = 0
        #: lines refused because the buffer was full (written by the callers' thread only).
        self.dropped = 0
        #: lines lost because writing them failed (written by the writer thread only).
        self.failed = 0
        self._reported = 0
        self._lock = threading.Lock()  # guards _lines, _size, _closing
        self._io = threading.Lock()  # one batch written at a time, in order
        self._wake = threading.Event()
        self._closing = False
        #: the thread was woken for the current batch (a hint: a lost race costs one more set).
        self._kicked = False
        # not ``_thread``: compiled, the field would be named ``__thread``, a C keyword
        self._writer = threading.Thread(target=self._run, name="sidecar-access-log", daemon=True)
        self._writer.start()

    def write(self, line: str) -> None:
        """Queue one line (ending in a newline; ASCII, as JSON with escapes is)."""
        n = len(line)
        lock = self._lock
        lock.acquire()  # not ``with``: compiled, its __enter__ and __exit__ are looked up per line
        try:
            size = self._size + n
            if size > self._max or self._closing:
                self.dropped += 1
                return
            self._lines.append(line)
            self._size = size
        finally:
            lock.release()
        if size >= self._batch_bytes and not self._kicked:
            # once per batch: Event.set is a lock and a notify, and the thread may take a few
            # ms (the GIL switch interval) to come for the batch
            self._kicked = True
            self._wake.set()

    @property
    def lost(self) -> int:
        """Lines that never reached stdout: dropped when full, or their write failed."""
        return self.dropped + self.failed

    def flush(self) -> None:
        """Write what is queued now, on the calling thread (tests; never on the event loop)."""
        self._write_batch()

    def close(self) -> None:
        """Write what is queued and stop the thread; waits at most ``CLOSE_TIMEOUT``."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        self._wake.set()
        self._writer.join(CLOSE_TIMEOUT)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                closing = self._closing
            self._write_batch()
            if closing:
                return

    def _write_batch(self) -> None:
        with self._io:
            with self._lock:
                lines, self._lines = self._lines, []
                self._size = 0
                self._kicked = False
            if lines:
                self._write_all("".join(lines).encode("utf-8"), len(lines))
            lost = self.dropped + self.failed
            if lost > self._reported:
                log.warning(
                    "access log lines dropped: stdout did not keep up",
                    extra={"fields": {"dropped": lost - self._reported, "dropped_total": lost}},
                )
                self._reported = lost

    def _write_all(self, data: bytes, lines: int) -> None:
        view = memoryview(data)
        try:
            while view:
                n = self._out(view)
                view = view[n:]
        except OSError:
            self.failed += lines  # stdout closed or broken: these lines are gone


_current: AccessLogWriter | None = None


def current() -> AccessLogWriter | None:
    """The process's access-log writer, if :func:`install` set one up."""
    return _current


def install(writer: AccessLogWriter | None) -> None:
    """Make ``writer`` the process's access-log writer (the previous one is flushed and closed).

    Routes composed before this keep the writer they were composed with.
    """
    global _current
    old, _current = _current, writer
    if old is not None and old is not writer:
        old.close()


def dropped_total() -> int:
    """Access-log lines lost so far by the installed writer (0 without one)."""
    w = _current
    return w.lost if w is not None else 0
