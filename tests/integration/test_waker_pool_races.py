"""Upstream connections shared by app connections, when one app leaves just as its upstream answers.

A call is answered inside the read that brought its upstream's response, and an app's request is
routed inside the read that brought it: a connection given back to the pool in one of those reads
can be taken by another call before anything the loop had already scheduled runs. These tests
stage that instant against a real ``sidecar run`` child process (the build the suite runs under):
the sidecar is stopped (SIGSTOP) while the events pile up, so they reach it in one batch, and a
long pipelined batch of refusals on a third connection holds the loop pass open while the
upstream's answer and the next app's request arrive together.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from typing import Any

from sidecar.testing import SidecarProcess
from tests.integration.raw_http import RawConnection, get
from tests.integration.raw_upstream import RawUpstream, UpstreamConn, ok_response

#: every blocking socket wait in these tests is bounded by this (seconds)
WAIT = 5.0
#: attempts at the racy instant; each one that lands there fails on the fault
ATTEMPTS = 25
#: requests in the batch that holds the loop pass open (each answered 404 in that pass)
BATCH = 1000


def _blocking(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _read_one_refusal(s: socket.socket) -> None:
    """Read one whole (content-length framed) answer off a blocking socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "the sidecar closed the connection"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "the sidecar closed the connection"
        body += chunk
    assert len(body) == length, "more than one answer arrived"


async def test_an_app_leaving_as_its_upstream_answers_never_cuts_another_apps_post() -> None:
    """Another app's POST is answered by the upstream, not refused as ``upstream_reset``, when
    the app before it on the same pooled connection left the instant its answer came."""
    holder: dict[str, Any] = {}
    got_a = asyncio.Event()
    a_answered = asyncio.Event()

    async def script(conn: UpstreamConn) -> None:
        while (req := await conn.request()) is not None:
            if req.target == "/a":
                holder["conn"] = conn
                got_a.set()
                await asyncio.wait_for(a_answered.wait(), WAIT)  # the test answers it itself
            else:
                await conn.send(ok_response(b"for-b"))

    async with RawUpstream(script) as up:
        proc = await asyncio.to_thread(SidecarProcess({"upstreams": {"up": {"url": up.url}}}).start)
        assert proc.proc is not None
        pid = proc.proc.pid
        try:
            for attempt in range(ATTEMPTS):
                got_a.clear()
                a_answered.clear()
                # B and C each have an idle worker (their first request answered), so what
                # they send next is answered inside the read that brings it
                b = await RawConnection.open(proc.http_port)
                await b.send(get("/nope"))
                assert (await b.response()).status == 404
                c = _blocking(proc.http_port)
                c.sendall(get("/nope"))
                _read_one_refusal(c)
                a = await RawConnection.open(proc.http_port)
                await a.send(b"POST /up/a HTTP/1.1\r\nHost: x\r\ncontent-length: 1\r\n\r\nA")
                await asyncio.wait_for(got_a.wait(), WAIT)
                upstream_a: UpstreamConn = holder["conn"]
                os.kill(pid, signal.SIGSTOP)
                try:
                    a.writer.transport.get_extra_info("socket").shutdown(socket.SHUT_WR)
                    c.sendall(get("/nope") * BATCH)
                finally:
                    os.kill(pid, signal.SIGCONT)
                # the first refusal of the batch: the sidecar is in the pass that read A's FIN
                assert c.recv(1)
                upstream_a.writer.write(ok_response(b"for-a"))
                b.writer.write(b"POST /up/b HTTP/1.1\r\nHost: x\r\ncontent-length: 1\r\n\r\nB")
                a_answered.set()
                resp = await b.response(timeout=WAIT * 2)
                assert resp.status == 200, (
                    f"attempt {attempt}: B's POST got {resp.status} "
                    f"{resp.header('x-sidecar-error')}: {resp.body!r}; the upstream saw "
                    f"{[[r.target for r in u.requests] for u in up.conns]}"
                )
                assert resp.body == b"for-b"
                c.close()
                await a.close()
                await b.close()
        finally:
            proc.kill()
