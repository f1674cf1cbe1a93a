"""The control ports' light protocol: probes answered in order, every other request handed to
aiohttp with the bytes read so far, and bounded heads (a fake transport, no sockets)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from sidecar import control_light
from sidecar.control_answers import Answer
from sidecar.control_light import LightProtocol, LightRoutes

PROBE = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
ADMIN = b"POST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"


class FakeTransport:
    """Records what the protocol writes and whether reading is paused."""

    def __init__(self) -> None:
        self.written = b""
        self.reading = True
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class FakePort:
    """A port whose light routes answer ``/healthz``, ``/metrics`` (and 404 when ``not_found``)."""

    def __init__(self, *, not_found: bool = False, methods: frozenset[bytes] = frozenset({b"GET"})):
        self.routes = LightRoutes(
            answers={
                "/healthz": lambda: Answer(200, b'{"status": "ok"}', "application/json"),
                "/metrics": lambda: Answer(200, b"x 1\n" * 10_000, "text/plain"),
            },
            methods=methods,
            accept=lambda host: host in ("127.0.0.1", "localhost"),
            refuse=lambda host: Answer(421, b"no\n"),
            not_found=not_found,
        )
        self.live: dict[LightProtocol, None] = {}
        self.handed: list[bytes] = []

    def hand_over(self, light: LightProtocol, transport: Any, data: bytes) -> None:
        self.handed.append(data)


def connect(port: FakePort) -> tuple[LightProtocol, FakeTransport]:
    light, transport = LightProtocol(port), FakeTransport()
    light.connection_made(transport)  # type: ignore[arg-type]
    return light, transport


def statuses(written: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", written)]


async def test_a_probe_is_answered_with_aiohttp_s_head_layout() -> None:
    """Status line, Content-Type, Content-Length, Date, Server, in aiohttp's order."""
    light, transport = connect(FakePort())
    light.data_received(PROBE)
    head, body = transport.written.split(b"\r\n\r\n", 1)
    names = [line.split(b":")[0] for line in head.split(b"\r\n")[1:]]
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert names == [b"Content-Type", b"Content-Length", b"Date", b"Server"]
    assert body == b'{"status": "ok"}'
    assert not transport.closed and transport.reading


async def test_pipelined_probe_then_admin_request_hands_over_exactly_the_rest() -> None:
    """The probe is answered here; aiohttp gets every byte of the admin request, reading paused."""
    port = FakePort()
    light, transport = connect(port)
    light.data_received(PROBE + ADMIN[:30])
    assert statuses(transport.written) == [200]
    assert port.handed == [ADMIN[:30]]
    assert not transport.reading and light.handing_over
    light.data_received(ADMIN[30:])  # nothing more is read here once handed over
    assert port.handed == [ADMIN[:30]]


async def test_a_head_arriving_in_pieces_is_answered_once_whole() -> None:
    """A probe split across reads is answered when its blank line arrives, not before."""
    light, transport = connect(FakePort())
    for i in range(len(PROBE)):
        light.data_received(PROBE[i : i + 1])
    assert statuses(transport.written) == [200]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.0\r\n\r\n",  # HTTP/1.0: aiohttp answers in kind
        b"GET /healthz HTTP/1.1\r\n\r\n",  # no Host: aiohttp's 400
        b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",  # not a method of this port
        b"GET /health%7az HTTP/1.1\r\nHost: localhost\r\n\r\n",  # aiohttp decodes the path
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nhi",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /config HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ],
    ids=["http10", "no-host", "head", "escaped", "body", "two-hosts", "other-path"],
)
async def test_anything_but_a_plain_probe_goes_to_aiohttp(request_bytes: bytes) -> None:
    """What aiohttp has its own answer to is left to aiohttp, byte for byte."""
    port = FakePort()
    light, transport = connect(port)
    light.data_received(request_bytes)
    assert transport.written == b""
    assert port.handed == [request_bytes]


async def test_a_foreign_host_is_refused_without_aiohttp() -> None:
    """The Host check answers a probe naming another site itself (421)."""
    port = FakePort()
    light, transport = connect(port)
    light.data_received(b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert statuses(transport.written) == [421] and port.handed == []


async def test_the_metrics_port_answers_head_and_404_itself() -> None:
    """HEAD has the GET's headers and no body; a plain unknown path is aiohttp's 404."""
    port = FakePort(not_found=True, methods=frozenset({b"GET", b"HEAD"}))
    light, transport = connect(port)
    light.data_received(b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert (
        transport.written.endswith(b"\r\n\r\n") and b"Content-Length: 16\r\n" in transport.written
    )
    transport.written = b""
    light.data_received(b"GET /nope/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert transport.written.endswith(b"\r\n\r\n404: Not Found")
    light.data_received(b"GET /a/../healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert len(port.handed) == 1  # a dot segment: aiohttp normalises it, so it decides


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"garbage\r\n\r\n", 400),
        (b"GET /healthz HTTP/2.0\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: y\r\n" * 2000, 431),
        (b"GET /" + b"a" * 20_000, 414),
    ],
    ids=["garbage", "http2", "bad-header", "huge-head", "huge-line"],
)
async def test_a_head_that_cannot_be_served_is_refused_and_closed(data: bytes, status: int) -> None:
    """Garbage gets 400 and a head past the bound 431/414, then the connection closes."""
    light, transport = connect(FakePort())
    light.data_received(data)
    assert statuses(transport.written) == [status] and transport.closed


async def test_a_head_that_trickles_in_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow-loris head gets 408 at its deadline, however many bytes keep coming."""
    monkeypatch.setattr(control_light, "HEAD_TIMEOUT", 0.05)
    light, transport = connect(FakePort())
    light.data_received(b"GET /healthz HTTP/1.1\r\n")
    async with asyncio.timeout(5):
        while not transport.closed:
            light.data_received(b"X")  # each byte must not push the deadline back
            await asyncio.sleep(0.01)
    assert statuses(transport.written) == [408]


async def test_answers_wait_while_the_peer_does_not_read() -> None:
    """Pipelined scrapes are answered only as fast as the peer reads (bounded write buffer)."""
    light, transport = connect(FakePort())
    light.data_received(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
    light.pause_writing()
    light.data_received(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n" * 3)
    assert statuses(transport.written) == [200] and not transport.reading
    light.resume_writing()
    assert statuses(transport.written) == [200] * 4 and transport.reading


async def test_connection_close_is_answered_and_honoured() -> None:
    """`Connection: close` gets aiohttp's `Connection: close` header, then the close."""
    light, transport = connect(FakePort())
    light.data_received(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert b"\r\nConnection: close\r\n\r\n" in transport.written and transport.closed
