"""Hostile requests to the control ports' light protocol: bounded heads, ``Host`` values it
cannot parse, smuggling; each is answered (or refused) and the next probe still answers. And a
pact whose request cannot be sent fails its interaction, not ``contract verify``."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.contract.pact import parse_pact
from sidecar.contract.verify import verify_interactions
from sidecar.testing import FakeUpstream, running_sidecar

WAIT = 5.0
PROBE = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` in one write and read until the peer closes (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(WAIT):
            return await reader.read()
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n", 431),
        (b"GET /healthz?" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414),
    ],
    ids=["headers", "request-line"],
)
async def test_a_probe_head_past_the_bound_is_refused_even_when_read_at_once(
    request_head: bytes, status: int
) -> None:
    """A 20 KB probe head (past the 16 KB bound) is refused and closed, however it arrives."""
    async with running_sidecar({"admin": {"address": "127.0.0.1:0"}, "upstreams": {}}) as s:
        answer = await exchange(s.admin_port, request_head)
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:60]
        assert (await exchange(s.admin_port, PROBE)).startswith(b"HTTP/1.1 200 OK")


async def test_a_host_port_of_superscript_digits_is_misdirected_not_dropped() -> None:
    """``Host: 127.0.0.1:²`` gets the 421 answer on a probe and an admin call alike."""
    async with running_sidecar({"admin": {"address": "127.0.0.1:0"}, "upstreams": {}}) as s:
        for path in (b"/healthz", b"/config"):
            head = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:\xc2\xb2\r\nConnection: close\r\n\r\n"
            answer = await exchange(s.admin_port, head % path)
            assert answer.startswith(b"HTTP/1.1 421 Misdirected Request"), answer[:60]
        assert (await exchange(s.admin_port, PROBE)).startswith(b"HTTP/1.1 200 OK")


async def test_a_smuggled_request_behind_content_length_and_chunked_is_never_answered() -> None:
    """CL+TE after a probe: the probe is answered, the request refused, nothing behind it read."""
    smuggled = (
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /config HTTP/1.1\r\nHost: evil.example\r\n\r\n"
    )
    async with running_sidecar({"admin": {"address": "127.0.0.1:0"}, "upstreams": {}}) as s:
        answer = await exchange(s.admin_port, smuggled)
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.count(b"HTTP/1.") == 2
        assert b" 400 Bad Request" in answer and b'"admin"' not in answer


async def test_connections_gone_while_aiohttp_lingers_do_not_count_against_the_cap() -> None:
    """70 admin calls whose body never came, then closed: the next probe still answers (aiohttp
    keeps each such handler listed for up to 10 s, holding no handle)."""
    slow = b"POST /config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nab"
    async with running_sidecar({"admin": {"address": "127.0.0.1:0"}, "upstreams": {}}) as s:
        for _ in range(70):
            reader, writer = await asyncio.open_connection("127.0.0.1", s.admin_port)
            try:
                writer.write(slow)
                async with asyncio.timeout(WAIT):
                    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 405")
                    writer.write_eof()
                    while await reader.read(65536):  # the sidecar closed: its side is gone
                        pass
            finally:
                writer.close()
        assert (await exchange(s.admin_port, PROBE)).startswith(b"HTTP/1.1 200 OK")


async def test_a_pact_request_with_a_header_injection_fails_its_interaction() -> None:
    """A pact header holding CR LF is a FAIL naming why; the verifier goes on to the next."""
    request = {"method": "GET", "path": "/x", "headers": {"x-a": "1\r\nx-b: 2"}}
    plain = {"method": "GET", "path": "/x"}
    pact = parse_pact(
        {
            "interactions": [
                {"description": "injected", "request": request, "response": {"status": 200}},
                {"description": "plain", "request": plain, "response": {"status": 200}},
            ]
        }
    )
    async with FakeUpstream() as up:
        verdicts = await verify_interactions(pact.interactions, up.url, seconds_per_call=WAIT)
    assert [v.passed for v in verdicts] == [False, True]
    assert verdicts[0].failures[0].startswith("request failed: ValueError")
    assert len(up.requests) == 1
