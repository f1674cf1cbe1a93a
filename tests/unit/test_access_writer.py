"""The access log's batched writer and its line format (no sockets: stdout is a fake here)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from sidecar.filters import access_log
from sidecar.filters.retry import ATTEMPTS
from sidecar.telemetry import access_writer, decisions
from sidecar.telemetry.access_writer import AccessLogWriter
from sidecar.telemetry.logs import ACCESS_LOGGER, JsonFormatter
from sidecar.telemetry.metrics import Metrics
from sidecar.telemetry.trace_ids import TRACE_ID
from sidecar.testing import make_exchange


class FakeStdout:
    """Records each write; can be made to block, or to fail, like a real stdout."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.open = threading.Event()
        self.open.set()
        self.broken = False

    def __call__(self, data: bytes) -> int:
        if not self.open.wait(10):
            raise AssertionError("the test never unblocked stdout")
        if self.broken:
            raise BrokenPipeError(32, "Broken pipe")
        self.writes.append(bytes(data))
        return len(data)

    @property
    def text(self) -> str:
        return b"".join(self.writes).decode()


def wait_until(cond: Callable[[], bool], limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def out() -> Iterator[FakeStdout]:
    yield FakeStdout()


def test_lines_are_written_in_order_within_the_flush_interval(out: FakeStdout) -> None:
    """A quiet sidecar's access lines still reach stdout promptly, one batch for many lines."""
    w = AccessLogWriter(out, interval=0.05)
    try:
        for i in range(100):
            w.write(f"line {i}\n")
        assert wait_until(lambda: out.text.count("\n") == 100)
        assert out.text == "".join(f"line {i}\n" for i in range(100))
        assert len(out.writes) <= 3  # batched, not a write per line
    finally:
        w.close()


def test_a_full_batch_is_written_before_the_interval(out: FakeStdout) -> None:
    """Under load, lines go out as soon as a batch fills, not only on the timer."""
    w = AccessLogWriter(out, interval=60.0, batch_bytes=1000)
    try:
        for _ in range(20):
            w.write("x" * 99 + "\n")
        assert wait_until(lambda: len(out.text) >= 1000)
    finally:
        w.close()
    assert out.text == ("x" * 99 + "\n") * 20


def test_close_writes_what_is_still_queued(out: FakeStdout) -> None:
    """Lines of the last calls before exit are not lost."""
    w = AccessLogWriter(out, interval=60.0)
    w.write("last\n")
    w.close()
    assert out.text == "last\n"
    w.write("after close\n")
    assert w.dropped == 1


def test_a_blocked_stdout_drops_lines_past_the_cap_and_counts_them(
    out: FakeStdout, caplog: pytest.LogCaptureFixture
) -> None:
    """If nobody reads stdout, calls are not stalled and memory stays bounded: lines are dropped,
    counted in `sidecar_access_log_dropped_total`, and the drop is reported once stdout moves."""
    out.open.clear()
    w = AccessLogWriter(out, interval=0.01, max_buffered=1000)
    access_writer.install(w)
    try:
        w.write("first\n")
        assert wait_until(lambda: not w._lines)  # the writer thread took it and is now stuck
        started = time.monotonic()
        for i in range(500):
            w.write(f"{i:09d}\n")  # 10 bytes each: 100 fit in the 1000-byte cap
        assert time.monotonic() - started < 1.0  # the caller never waited for stdout
        assert w.dropped == 400
        text = Metrics().exposition().decode()
        assert "sidecar_access_log_dropped_total 400.0" in text
        with caplog.at_level(logging.WARNING, logger="sidecar.telemetry"):
            out.open.set()
            assert wait_until(lambda: out.text.count("\n") == 101)
            assert wait_until(lambda: bool(caplog.records))
        assert out.text == "first\n" + "".join(f"{i:09d}\n" for i in range(100))
        (rec,) = caplog.records
        assert rec.getMessage().startswith("access log lines dropped")
        assert rec.fields == {"dropped": 400, "dropped_total": 400}  # type: ignore[attr-defined]
    finally:
        access_writer.install(None)
    assert access_writer.dropped_total() == 0  # no writer installed any more


def test_lines_lost_to_a_broken_stdout_are_counted(out: FakeStdout) -> None:
    """A closed stdout does not crash the writer; what it could not write is counted."""
    out.broken = True
    w = AccessLogWriter(out, interval=60.0)
    w.write("a\n")
    w.write("b\n")
    w.flush()
    assert w.lost == 2 and w.failed == 2
    w.close()


def test_the_written_line_is_byte_for_byte_what_the_json_formatter_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Switching from `logging` to the batched writer changed no byte a log shipper parses."""
    now = 1795689278.6639
    monkeypatch.setattr(access_log, "time", lambda: now)
    monkeypatch.setattr(access_log, "perf_counter", lambda: 12.3456789)
    ex = make_exchange("GET", '/q"uote\\/ü\u2028\x01', client="[::1]:5555", body=b"abc")
    ex.start = 10.0
    # every optional field at once: a trace, a retried call, a decision
    traced = make_exchange("POST", "/t", client="127.0.0.1:1", body=b"")
    traced.start = 10.0
    traced.stash[TRACE_ID] = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced.stash[ATTEMPTS] = 3
    decisions.note(traced, decisions.RATE_LIMIT_WAIT)
    decisions.note(traced, decisions.GLOBAL_RATE_LIMIT_SHADOW)

    async def stream() -> AsyncIterator[bytes]:
        yield b"x"

    streamed = make_exchange("PUT", "/s", client="127.0.0.1:2")
    streamed.body, streamed.body_length = stream(), None  # chunked: no bytes_received
    streamed.start = 10.0
    got: list[str] = []
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(ACCESS_LOGGER)
    old, keep = logger.level, Keep()
    logger.setLevel(logging.INFO)
    logger.addHandler(keep)
    try:
        for listener in ("http", "grpc", 'in"bound%s'):
            fast = access_log._line_writer(listener, "up-1", "ro.ute", got.append)
            slow = access_log._record_writer(listener, "up-1", "ro.ute")
            calls = [
                (ex, 200, 10, None, True, None),
                (ex, 504, 0, "upstream_timeout", True, None),
                (ex, 200, 3, None, False, None),
                (ex, 404, 0, "no_route", True, None),
                (traced, 200, 5, None, True, 0),
                (traced, 200, 0, "rate_limited", True, 8),
                (streamed, 200, 1, None, True, 14),
            ]
            for call in calls:
                fast(*call)
                slow(*call)
    finally:
        logger.removeHandler(keep)
        logger.setLevel(old)
    fmt = JsonFormatter()
    for rec in records:
        rec.created = now
    assert len(got) == 21
    assert got == [fmt.format(rec) + "\n" for rec in records]
    # the timestamp as before: UTC to the millisecond, as LogRecord.msecs truncates it
    assert got[0].startswith('{"ts": "2026-11-26T10:34:38.663Z", "level": "info", ')
    assert got[2].endswith(', "aborted": true}\n')
    assert '"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "attempts": 3, ' in got[4]
    assert '"decision": "rate_limit:wait,global_rate_limit:shadow"' in got[4]
    assert '"bytes_received"' not in got[6] and '"grpc_status": 14' in got[6]
    assert '"level": "warning"' in got[6]  # UNAVAILABLE is the server side's failure
