"""Retries against real fault upstreams on loopback: bounded by attempts, budget and deadline,
safe for non-idempotent calls, never after the app saw a byte.

Upstreams are aiohttp servers (503 storms, counting calls) and scripted raw sockets (refuse,
reset before or after the response head). Backoff is shortened so the suite stays fast.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from aiohttp import web

from sidecar.app import Sidecar
from sidecar.testing import FakeUpstream, SidecarProcess, running_sidecar
from tests.integration.raw_upstream import RawUpstream, UpstreamConn, answer_each, ok_response

FAST = {"base": "1ms", "max": "2ms"}


def config(url: str, retry: dict[str, Any] | None = None, **up: Any) -> dict[str, Any]:
    return {"upstreams": {"up": {"url": url, "retry": {"backoff": FAST, **(retry or {})}, **up}}}


def metric(s: Sidecar, name: str, **labels: str) -> float:
    return s.metrics.registry.get_sample_value(name, labels) or 0.0


def retries(s: Sidecar, condition: str) -> float:
    return metric(s, "sidecar_retries_total", upstream="up", route="up", condition=condition)


def skipped(s: Sidecar, reason: str) -> float:
    return metric(s, "sidecar_retries_skipped_total", upstream="up", route="up", reason=reason)


def client(s: Sidecar) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=10.0)


def storm(answers: list[int], retry_after: str | None = None) -> Any:
    """An aiohttp handler answering `answers[i]` to the i-th call (the last one repeats)."""
    calls = {"n": 0}

    async def handler(request: web.Request) -> web.StreamResponse:
        n = calls["n"]
        calls["n"] += 1
        code = answers[min(n, len(answers) - 1)]
        headers = {"retry-after": retry_after} if retry_after and code == 503 else {}
        return web.Response(status=code, text=f"answer {n + 1}", headers=headers)

    return handler


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_retried_attempts_times_then_502() -> None:
    """A down upstream costs `attempts` tries, then the app gets 502 `upstream_connect`."""
    async with running_sidecar(config(f"http://127.0.0.1:{closed_port()}", {"attempts": 3})) as s:
        async with client(s) as c:
            r = await c.get("/up/x")
        assert (r.status_code, r.headers["x-sidecar-error"]) == (502, "upstream_connect")
        attempts = metric(
            s, "sidecar_upstream_attempts_total", upstream="up", outcome="upstream_connect"
        )
        assert attempts == 3
        assert retries(s, "connect-failure") == 2


async def test_a_reset_before_the_response_is_retried_on_a_new_connection() -> None:
    """An upstream instance that drops the connection before answering is tried again."""

    async def script(conn: UpstreamConn) -> None:
        if conn.index == 0:
            await conn.request()
            conn.reset()
            return
        await answer_each(conn, ok_response(b"second"))

    async with RawUpstream(script) as up, running_sidecar(config(up.url)) as s:
        async with client(s) as c:
            r = await c.get("/up/x")
        assert (r.status_code, r.text) == (200, "second")
        assert len(up.conns) == 2
        assert retries(s, "reset") == 1


async def test_a_503_storm_is_retried_up_to_attempts_and_the_app_gets_the_last_503() -> None:
    """Retries stop at `attempts`; the app then sees the upstream's own last answer."""
    async with (
        FakeUpstream(storm([503])) as up,
        running_sidecar(config(up.url, {"attempts": 3})) as s,
    ):
        async with client(s) as c:
            r = await c.get("/up/x")
        assert (r.status_code, r.text) == (503, "answer 3")
        assert "x-sidecar-error" not in r.headers  # the upstream's answer, not a sidecar decision
        assert len(up.requests) == 3
        assert retries(s, "503") == 2


async def test_the_access_log_line_says_how_many_attempts_a_call_made() -> None:
    """An operator reading the access log sees that a call was retried, and how often."""
    async with FakeUpstream(storm([503, 503, 200, 200])) as up:
        with SidecarProcess(config(up.url)) as p:
            async with httpx.AsyncClient(base_url=p.http_url, timeout=10.0) as c:
                assert (await c.get("/up/retried")).status_code == 200
                assert (await c.get("/up/first-time")).status_code == 200
            deadline = time.monotonic() + 10
            while len(p.log_lines(stdout=True)) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            lines = {line["path"]: line for line in p.log_lines(stdout=True)}
    assert lines["/retried"]["attempts"] == 3
    assert "attempts" not in lines["/first-time"]


async def test_a_post_without_idempotency_key_is_never_retried() -> None:
    """The upstream may have acted on the POST already: it is sent exactly once."""
    async with FakeUpstream(storm([503])) as up, running_sidecar(config(up.url)) as s:
        async with client(s) as c:
            r = await c.post("/up/charge", content=b'{"amount": 5}')
        assert r.status_code == 503
        assert len(up.requests) == 1
        assert skipped(s, "non_idempotent") == 1


async def test_a_post_with_idempotency_key_is_retried_with_the_same_body() -> None:
    """With an `Idempotency-Key` the upstream can deduplicate, so the POST is retried whole."""
    async with FakeUpstream(storm([503, 503, 201])) as up, running_sidecar(config(up.url)) as s:
        async with client(s) as c:
            r = await c.post(
                "/up/charge", content=b'{"amount": 5}', headers={"Idempotency-Key": "k-42"}
            )
        assert r.status_code == 201
        assert [q.body for q in up.requests] == [b'{"amount": 5}'] * 3
        assert {q.headers["idempotency-key"] for q in up.requests} == {"k-42"}


async def test_a_route_may_declare_its_posts_safe_to_retry() -> None:
    """`retry.non_idempotent: true` on a route retries its POSTs; other routes still do not."""
    async with FakeUpstream(storm([503])) as up:
        cfg = config(up.url, {"attempts": 2})
        cfg["routes"] = [
            {
                "name": "search",
                "match": {"path_prefix": "/search"},
                "upstream": "up",
                "retry": {"attempts": 2, "non_idempotent": True, "backoff": FAST},
            }
        ]
        async with running_sidecar(cfg) as s, client(s) as c:
            await c.post("/search", content=b"q")
            assert len(up.requests) == 2
            await c.post("/up/other", content=b"q")
            assert len(up.requests) == 3


async def test_the_budget_caps_retries_under_a_failing_upstream() -> None:
    """200 calls to a dead upstream add at most 20 % + 3 retries, not 400."""
    # the breaker would open after 5 failures and stop the calls: this test is about the budget
    no_breaker = {"circuit_breaker": {"enabled": False}}
    async with (
        FakeUpstream(storm([503])) as up,
        running_sidecar(config(up.url, {"attempts": 3}, **no_breaker)) as s,
    ):
        gate = asyncio.Semaphore(20)

        async def call(c: httpx.AsyncClient) -> int:
            async with gate:
                return (await c.get("/up/x")).status_code

        async with client(s) as c:
            codes = await asyncio.gather(*(call(c) for _ in range(200)))
        assert set(codes) == {503}
        sent = retries(s, "503")
        assert 40 <= sent <= 0.2 * 200 + 3
        assert len(up.requests) == 200 + sent
        assert skipped(s, "budget") > 100
        budget = s.describe_upstreams()["up"]["policies"]["retry_budget"]  # as on /upstreams
        assert budget["requests"] == 200 and budget["retries"] == sent


async def test_retry_after_is_honoured() -> None:
    """`Retry-After: 1` on a 503 makes the sidecar wait a second, not its 1 ms backoff."""
    async with (
        FakeUpstream(storm([503, 200], retry_after="1")) as up,
        running_sidecar(config(up.url, timeout="5s")) as s,
    ):
        async with client(s) as c:
            start = time.monotonic()
            r = await c.get("/up/x")
            elapsed = time.monotonic() - start
        assert r.status_code == 200 and len(up.requests) == 2
        assert 1.0 <= elapsed < 2.0


async def test_retry_after_past_the_deadline_returns_the_503_at_once() -> None:
    """An upstream asking for 30 s when 2 s are left gets no retry; the app sees its answer."""
    async with (
        FakeUpstream(storm([503, 200], retry_after="30")) as up,
        running_sidecar(config(up.url, timeout="2s")) as s,
    ):
        async with client(s) as c:
            start = time.monotonic()
            r = await c.get("/up/x")
            elapsed = time.monotonic() - start
        assert (r.status_code, r.headers["retry-after"]) == (503, "30")
        assert len(up.requests) == 1 and elapsed < 1.0
        assert skipped(s, "retry_after") == 1


async def big_body(size: int, chunk: int = 16 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, size, chunk):
        yield bytes([65 + (i // chunk) % 26]) * min(chunk, size - i)


async def test_a_large_streamed_body_is_sent_once_and_not_retried() -> None:
    """A 512 KiB chunked upload is streamed through, never buffered, and counted as not retried."""
    async with FakeUpstream(storm([503])) as up, running_sidecar(config(up.url)) as s:
        async with client(s) as c:
            r = await c.put("/up/blob", content=big_body(512 * 1024))
        assert r.status_code == 503
        assert len(up.requests) == 1 and len(up.requests[0].body) == 512 * 1024
        assert skipped(s, "body_too_large") == 1


async def test_a_streamed_body_of_known_length_within_the_buffer_is_replayed() -> None:
    """A 200 KiB upload with Content-Length fits a 256 KiB buffer: each attempt sends it whole."""
    size = 200 * 1024
    async with (
        FakeUpstream(storm([503, 503, 200])) as up,
        running_sidecar(config(up.url, {"buffer": "256KiB"})) as s,
    ):
        async with client(s) as c:
            r = await c.put(
                "/up/blob", content=big_body(size), headers={"content-length": str(size)}
            )
        assert r.status_code == 200
        expected = b"".join([chunk async for chunk in big_body(size)])
        assert [q.body == expected for q in up.requests] == [True, True, True]


async def test_no_retry_once_the_response_head_reached_the_app() -> None:
    """A reset in the middle of the body is the app's to see: replaying would duplicate bytes."""

    async def script(conn: UpstreamConn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 10)
        await asyncio.sleep(0.05)  # the head is relayed before the cut  # noqa: ASYNC110
        conn.reset()

    async with RawUpstream(script) as up, running_sidecar(config(up.url)) as s:
        async with client(s) as c:
            failed = False
            try:
                async with c.stream("GET", "/up/x") as r:
                    assert r.status_code == 200
                    async for _ in r.aiter_bytes():
                        pass
            except httpx.HTTPError:
                failed = True
        assert failed
        assert len(up.conns) == 1
        assert retries(s, "reset") == 0
