"""``FlowControl``: the back-pressure both HTTP/1.1 connections share, with no sockets."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.flow_control import BODY_WAITING, FlowControl

OTHER = 2  # a second reason to pause reading, as the listener has (a full pipelining queue)


class Transport:
    """Records what the connection asked of its transport."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def pause_reading(self) -> None:
        self.events.append("pause")

    def resume_reading(self) -> None:
        self.events.append("resume")


def connection() -> tuple[FlowControl, Transport]:
    """A ``FlowControl`` on a recording transport (not a subclass: a compiled build's
    ``FlowControl`` cannot be subclassed by interpreted code)."""
    conn = FlowControl()
    recorder = Transport()
    conn.transport = recorder  # type: ignore[assignment]
    return conn, recorder


def test_reading_resumes_only_when_the_last_reason_ends() -> None:
    """A body read below its mark does not resume reading that a full queue still holds."""
    conn, recorder = connection()
    conn.pause_reading(BODY_WAITING)
    conn.pause_reading(OTHER)
    conn.resume_reading(BODY_WAITING)
    assert recorder.events == ["pause"]
    conn.resume_reading(OTHER)
    assert recorder.events == ["pause", "resume"]


def test_repeated_pauses_and_resumes_of_one_reason_reach_the_transport_once() -> None:
    """A body fed past its mark many times pauses the socket once; reads below it resume once."""
    conn, recorder = connection()
    for _ in range(3):
        conn.pause_reading()
    for _ in range(3):
        conn.resume_reading()
    assert recorder.events == ["pause", "resume"]


def test_a_closed_connection_leaves_its_transport_alone() -> None:
    """Once the connection is closed, pausing or resuming reading never touches the transport."""
    conn, recorder = connection()
    conn.closed = True
    conn.pause_reading()
    conn.resume_reading()
    assert recorder.events == []


async def test_drain_waits_until_the_peer_reads_again() -> None:
    """A writer past the high-water mark waits for resume_writing before writing more."""
    conn, _ = connection()
    conn.pause_writing()
    assert conn.write_paused
    waiting = asyncio.create_task(conn.drain())
    await asyncio.sleep(0)
    assert not waiting.done()
    conn.resume_writing()
    await asyncio.wait_for(waiting, 1)
    assert not conn.write_paused


async def test_a_writer_waiting_when_the_connection_closes_gets_the_closed_error() -> None:
    """The connection closing under a waiting writer fails its wait with the side's own error."""
    conn, _ = connection()
    conn.pause_writing()
    waiting = asyncio.create_task(conn.drain())
    await asyncio.sleep(0)
    conn.closed = True
    conn.fail_drain()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(waiting, 1)
    with pytest.raises(ConnectionResetError):
        await conn.drain()  # closed already: fails at once
