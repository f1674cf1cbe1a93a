"""The control ports answer probes and scrapes without aiohttp, exactly as aiohttp did, and hand
every other request to aiohttp on the same connection without losing a byte."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

import sidecar.api.admin as admin_api
from sidecar.api import AdminRouteRegistry, hookimpl
from sidecar.app import Sidecar
from sidecar.testing import running_sidecar

WAIT = 10.0


class EchoRoute:
    """A plugin admin route that reads a whole request body: ``POST /echo`` → size and sha256."""

    @staticmethod
    @hookimpl
    def sidecar_register_admin_routes(registry: AdminRouteRegistry) -> None:
        async def echo(request: web.Request) -> web.Response:
            body = await request.read()
            return web.Response(text=f"{len(body)} {hashlib.sha256(body).hexdigest()}")

        registry.add("POST", "/echo", echo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def sidecar(metrics_port: int | None = None) -> AsyncIterator[Sidecar]:
    admin: dict[str, str] = {"address": "127.0.0.1:0"}
    if metrics_port is not None:
        admin["metrics_address"] = f"127.0.0.1:{metrics_port}"
    async with running_sidecar({"admin": admin, "upstreams": {}}, plugins=[EchoRoute]) as s:
        yield s


async def exchange(port: int, data: bytes | list[bytes]) -> bytes:
    """Send ``data`` (pieces one write each) on one connection and read until the peer closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for piece in [data] if isinstance(data, bytes) else data:
            writer.write(piece)
            await writer.drain()
        async with asyncio.timeout(WAIT):
            return await reader.read()  # every request ends with Connection: close
    finally:
        writer.close()


def without_date(answer: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"", answer)


def split_answers(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(head, body)`` of each answer in ``data`` (bodies framed by Content-Length)."""
    out = []
    while data:
        head, rest = data.split(b"\r\n\r\n", 1)
        size = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        out.append((head, rest[:size]))
        data = rest[size:]
    return out


def get(path: str, host: str = "127.0.0.1", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


@pytest.mark.parametrize(
    ("light", "through_aiohttp"),
    [
        (get("/healthz"), get("/health%7A")),  # aiohttp decodes the escape: the same route
        (get("/readyz"), get("/ready%7A")),
        (get("/healthz", host="evil.example"), get("/health%7A", host="evil.example")),
    ],
    ids=["healthz", "readyz", "misdirected"],
)
async def test_admin_probes_are_answered_as_aiohttp_answers_them(
    light: bytes, through_aiohttp: bytes
) -> None:
    """Status, headers (in order, Server included) and body are aiohttp's, Date aside."""
    async with sidecar() as s:
        mine = await exchange(s.admin_port, light)
        assert s.admin is not None and not s.admin.aiohttp_loaded
        theirs = await exchange(s.admin_port, through_aiohttp)
        assert s.admin.aiohttp_loaded
        assert without_date(mine) == without_date(theirs)


async def test_the_metrics_port_answers_as_aiohttp_did() -> None:
    """Scrapes, HEAD and 404 on the metrics port: aiohttp's very answers, without aiohttp."""
    port = free_port()
    async with sidecar(metrics_port=port):
        pairs = [
            (get("/healthz"), get("/health%7A")),
            (get("/readyz", method="HEAD"), get("/ready%7A", method="HEAD")),
            (get("/nope"), get("/nop%65")),
            (get("/metrics", host="evil.example"), get("/metric%73", host="evil.example")),
        ]
        for light, through_aiohttp in pairs:
            mine = without_date(await exchange(port, light))
            assert mine == without_date(await exchange(port, through_aiohttp))
        mine = without_date(await exchange(port, get("/metrics")))
        theirs = without_date(await exchange(port, get("/metric%73")))
        drop_length = re.compile(rb"Content-Length: \d+\r\n")
        assert drop_length.sub(b"", mine.split(b"\r\n\r\n")[0]) == drop_length.sub(
            b"", theirs.split(b"\r\n\r\n")[0]
        )
        assert b"# TYPE sidecar_requests_total counter" in mine


async def test_probes_and_scrapes_never_build_the_aiohttp_app() -> None:
    """A sidecar only probed and scraped serves without aiohttp's app; /config builds it."""
    async with sidecar() as s:
        assert s.admin is not None
        for path in ("/healthz", "/readyz", "/metrics", "/healthz?verbose=1"):
            assert (await exchange(s.admin_port, get(path))).startswith(b"HTTP/1.1 200 OK")
        assert not s.admin.aiohttp_loaded
        assert (await exchange(s.admin_port, get("/config"))).startswith(b"HTTP/1.1 200 OK")
        assert s.admin.aiohttp_loaded


async def test_pipelined_probe_then_admin_request_on_one_connection() -> None:
    """A probe, an admin call and a probe sent at once are answered in order on one connection."""
    async with sidecar() as s:
        keep = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        plugins = b"GET /plugins HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        answers = split_answers(await exchange(s.admin_port, keep + plugins + get("/readyz")))
        assert [head.split(b"\r\n")[0] for head, _ in answers] == [b"HTTP/1.1 200 OK"] * 3
        assert answers[0][1] == answers[2][1].replace(b"ready", b"ok")
        assert b'"source"' in answers[1][1]


async def test_a_large_body_arriving_in_pieces_during_the_hand_over_is_read_whole() -> None:
    """A 1 MB POST sent in 64 KB pieces while aiohttp is being loaded reaches the handler whole."""
    body = bytes(range(256)) * 4096
    head = f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    head += "Connection: close\r\n\r\n"
    pieces = [head.encode()[:7], head.encode()[7:]]
    pieces += [body[i : i + 65536] for i in range(0, len(body), 65536)]
    async with sidecar() as s:
        answer = await exchange(s.admin_port, pieces)
        assert answer.startswith(b"HTTP/1.1 200 OK")
        expected = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
        assert answer.endswith(b"\r\n\r\n" + expected)


async def test_many_concurrent_first_admin_calls_share_one_aiohttp_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twenty first calls at once are all answered, and aiohttp's server is set up once."""
    setups = 0
    real_setup = web.AppRunner.setup

    async def counted(self: web.AppRunner) -> None:
        nonlocal setups
        setups += 1
        await real_setup(self)

    monkeypatch.setattr(web.AppRunner, "setup", counted)
    async with sidecar() as s:
        answers = await asyncio.gather(*(exchange(s.admin_port, get("/config")) for _ in range(20)))
        assert all(a.startswith(b"HTTP/1.1 200 OK") for a in answers)
        assert setups == 1


async def test_idle_aiohttp_connections_are_evicted_for_a_probe() -> None:
    """64 kept-alive admin connections (aiohttp's) fill the port; a probe still gets through."""
    async with sidecar() as s:
        held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            for _ in range(64):
                reader, writer = await asyncio.open_connection("127.0.0.1", s.admin_port)
                writer.write(b"GET /plugins HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                async with asyncio.timeout(WAIT):
                    await reader.readuntil(b"\r\n\r\n")
                held.append((reader, writer))
            answer = await exchange(s.admin_port, get("/readyz"))
            assert answer.startswith(b"HTTP/1.1 200 OK")
            text = (await exchange(s.admin_port, get("/metrics"))).decode()
            assert 'sidecar_connections_refused_total{listener="admin",reason="evicted"} ' in text
        finally:
            for _, writer in held:
                writer.close()


async def test_an_admin_body_that_never_comes_times_out_and_frees_the_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """64 clients that send a plugin admin route's head and then stall their body fill the port;
    each gets a 408 once the body deadline passes, a probe is then answered, and a body that
    arrives in time still reaches the route whole."""
    monkeypatch.setattr(admin_api, "BODY_READ_TIMEOUT", 0.5)
    stalled = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nx"
    async with sidecar() as s:
        held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            for _ in range(64):
                reader, writer = await asyncio.open_connection("127.0.0.1", s.admin_port)
                writer.write(stalled)
                held.append((reader, writer))
            for reader, _ in held:
                async with asyncio.timeout(WAIT):
                    answer = await reader.read()  # the 408 closes the connection
                assert answer.startswith(b"HTTP/1.1 408 ")
                assert b'"error": "body_timeout"' in answer
        finally:
            for _, writer in held:
                writer.close()
        assert (await exchange(s.admin_port, get("/readyz"))).startswith(b"HTTP/1.1 200 OK")
        body = b"x" * 1000
        head = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        head += b"Content-Length: %d\r\n\r\n" % len(body)
        answer = await exchange(s.admin_port, [head, body[:10], body[10:]])
        expected = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(expected)
