"""The gRPC adapter's request pump: it never outlives its call, and never drops a message it
is reading from the app when the call ends (a retry's replay buffer may still want it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sidecar.grpc.upstream_call import _send, _Writing


class StuckCall:
    """A grpc.aio call whose ``write`` never returns (a call cancelled before it started)."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], None]] = []
        self.in_write = asyncio.Event()
        self.written: list[bytes] = []

    def add_done_callback(self, cb: Callable[[Any], None]) -> None:
        self.callbacks.append(cb)

    async def write(self, message: bytes) -> None:
        self.written.append(message)
        self.in_write.set()
        await asyncio.get_running_loop().create_future()  # never done

    async def done_writing(self) -> None:
        await asyncio.get_running_loop().create_future()

    def cancel(self) -> None:
        self.end()

    def end(self) -> None:
        for cb in self.callbacks:
            cb(self)


async def _messages(gate: asyncio.Event | None, *items: bytes) -> AsyncIterator[bytes]:
    if gate is not None:
        await gate.wait()
    for item in items:
        yield item


async def test_a_pump_stuck_in_a_write_ends_when_its_call_ends() -> None:
    """A call cut at its very start leaves no request task waiting forever."""
    call = StuckCall()
    writing = _Writing()
    pump = asyncio.create_task(_send(call, _messages(None, b"a"), writing))
    call.add_done_callback(writing.release(pump))
    async with asyncio.timeout(1):
        await call.in_write.wait()
    call.end()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(1):
            await pump


async def test_a_pump_reading_the_apps_stream_is_not_cancelled_when_its_call_ends() -> None:
    """The message being read from the app is not lost to a cancellation: the pump goes on
    until its (failing) write, so a replay buffer underneath has seen the message."""
    call = StuckCall()
    writing = _Writing()
    gate = asyncio.Event()
    pump = asyncio.create_task(_send(call, _messages(gate, b"kept"), writing))
    call.add_done_callback(writing.release(pump))
    await asyncio.sleep(0)  # the pump now waits on the app's stream
    call.end()
    assert not pump.done()
    gate.set()
    async with asyncio.timeout(1):
        await call.in_write.wait()
    assert call.written == [b"kept"]
    pump.cancel()
