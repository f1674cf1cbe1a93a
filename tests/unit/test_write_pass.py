"""Writes at the end of the loop's pass (:meth:`FlowControl.write_later`): what the data path
relies on is that a pass's first write goes out at once (a lone call waits for nothing), the
ones after it once the pass ends, in the order they were written, never overtaken by a later
write, half-close or close of the same connection, and that the writes of many connections in
one pass cost one loop callback."""

from __future__ import annotations

import asyncio
from typing import Any

from sidecar.flow_control import WATCHED_ONE_IN, FlowControl, WritePass, write_pass

from .fake_transport import FakeTransport


class _Calls:
    """A loop's ``call_soon``, recorded (what :class:`WritePass` schedules, and how often)."""

    def __init__(self) -> None:
        self.scheduled: list[Any] = []

    def call_soon(self, callback: Any, *args: Any) -> None:
        self.scheduled.append(callback)


class _Loop(asyncio.AbstractEventLoop):
    def __init__(self) -> None:
        self.calls = _Calls()

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> Any:
        self.calls.call_soon(callback, *args)


def _connection(wp: WritePass) -> tuple[FlowControl, FakeTransport]:
    conn = FlowControl()
    transport = FakeTransport(conn)
    conn.transport = transport  # type: ignore[assignment]
    conn.write_pass = wp
    return conn, transport


async def _pass_ended() -> None:
    """Returns once the callbacks scheduled before this call have run (the pass's end)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(done.set_result, None)
    await done


async def test_the_first_write_of_a_pass_goes_at_once_the_next_when_the_pass_ends() -> None:
    wp = write_pass(asyncio.get_running_loop())
    first, first_transport = _connection(wp)
    conn, transport = _connection(wp)
    first.write_later(b"GET / HTTP/1.1\r\n\r\n")
    assert first_transport.written == [b"GET / HTTP/1.1\r\n\r\n"]  # a lone call waits for nothing
    conn.write_later(b"HTTP/1.1 200 OK\r\n\r\n")
    conn.write_later(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert transport.written == []  # held until every callback of this pass ran
    await _pass_ended()
    assert transport.written == [b"HTTP/1.1 200 OK\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n"]
    assert conn.unsent is None
    # the next pass begins anew: its first write goes at once again
    conn.write_later(b"HTTP/1.1 200 OK\r\n\r\n")
    assert len(transport.written) == 3


async def test_a_direct_write_after_a_held_one_does_not_overtake_it() -> None:
    conn, transport = _connection(write_pass(asyncio.get_running_loop()))
    conn.write_later(b"zeroth")  # the pass's first: at once
    conn.write_later(b"first")  # held
    conn.flush_writes()  # what every other use of the transport does first
    transport.write(b"second")
    await _pass_ended()
    assert transport.written == [b"zeroth", b"first", b"second"]  # nothing written twice


def test_many_connections_writing_in_one_pass_cost_one_loop_callback() -> None:
    loop = _Loop()
    wp = WritePass(loop)
    conns = [_connection(wp) for _ in range(20)]
    for conn, _ in conns:
        conn.write_later(b"request")
        conn.write_later(b"more")
    assert len(loop.calls.scheduled) == 1
    assert conns[0][1].written == [b"request"]  # the pass's first write, at once
    assert all(t.written == [] for _, t in conns[1:])
    loop.calls.scheduled[0]()  # the pass ends
    assert all(t.written == [b"request", b"more"] for _, t in conns)
    # the next pass schedules its own callback
    conns[0][0].write_later(b"next")
    assert len(loop.calls.scheduled) == 2


def test_a_quiet_proxy_watches_one_pass_in_so_many_and_a_busy_one_every_pass() -> None:
    loop = _Loop()
    wp = WritePass(loop)
    conn, transport = _connection(wp)
    other, other_transport = _connection(wp)

    def one_write_passes(n: int) -> None:
        for _ in range(n):
            conn.write_later(b"x")
            if wp.started:
                loop.calls.scheduled[-1]()  # a watched pass ends with its one write

    one_write_passes(WATCHED_ONE_IN)  # one watched, then the quiet ones written at once
    assert len(loop.calls.scheduled) == 1
    assert len(transport.written) == WATCHED_ONE_IN
    # load: the next watched pass sees a second write, which waits for the pass's end
    conn.write_later(b"first")
    other.write_later(b"second")
    assert other_transport.written == []
    loop.calls.scheduled[-1]()
    assert other_transport.written == [b"second"]
    # busy: every pass is watched, while each carries more than one write
    before = len(loop.calls.scheduled)
    for _ in range(3):
        conn.write_later(b"a")
        other.write_later(b"b")
        loop.calls.scheduled[-1]()
    assert len(loop.calls.scheduled) == before + 3
    conn.write_later(b"c")  # watched, and alone in its pass
    loop.calls.scheduled[-1]()
    conn.write_later(b"d")  # quiet again: not watched
    assert len(loop.calls.scheduled) == before + 4
    assert transport.written[-2:] == [b"c", b"d"]


def test_a_connection_closed_before_the_pass_ends_writes_nothing_and_the_others_still_do() -> None:
    loop = _Loop()
    wp = WritePass(loop)
    opener, _ = _connection(wp)
    gone, gone_transport = _connection(wp)
    live, live_transport = _connection(wp)
    opener.write_later(b"first")  # the pass's first write, at once
    gone.write_later(b"lost")
    live.write_later(b"kept")
    gone_transport.closed = True  # the peer went away in the same pass
    loop.calls.scheduled[0]()
    assert gone_transport.written == []
    assert live_transport.written == [b"kept"]


def test_without_a_pass_a_write_goes_out_at_once() -> None:
    conn = FlowControl()
    transport = FakeTransport(conn)
    conn.transport = transport  # type: ignore[assignment]
    conn.write_later(b"now")
    assert transport.written == [b"now"]
