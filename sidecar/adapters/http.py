"""The plain HTTP/1.1 adapter (``adapter: http``, the default): a built-in plugin.

For each upstream it keeps one bounded keep-alive :class:`~sidecar.upstream.pool.Pool` and builds
the terminal handler of its routes: write the request head (``Host`` rewritten to the upstream,
``X-Forwarded-For`` appended), stream the body with back-pressure, return the response when its
head arrives. Pools are keyed by everything a connection depends on, so a reload that leaves an
upstream's address and TLS alone keeps its warm connections.

A request on a reused connection that fails before any response byte (the upstream closed the idle
connection as we wrote: the keep-alive race) is sent once more on a fresh connection when its body
is replayable; this is not a retry policy (that comes with the resilience filters).
"""

from __future__ import annotations

__all__ = ["HttpAdapter"]

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..chain import Handler
from ..config.models import UpstreamConfig, UpstreamTLS
from ..errors import SidecarError, UpstreamReset, UpstreamTimeout
from ..exchange import Exchange, Response
from ..hookspecs import hookimpl
from ..registry import Adapter, AdapterRegistry, AdapterServices
from ..upstream.connection import UpstreamConnection
from ..upstream.pool import Pool


def make_client_ssl_context(tls: UpstreamTLS | None) -> ssl.SSLContext:
    """A client context: system CAs or ``tls.ca``, host name checks, optional client cert."""
    ctx = ssl.create_default_context(cafile=tls.ca if tls is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    if tls is not None:
        if tls.cert is not None:
            ctx.load_cert_chain(tls.cert, tls.key)
        if not tls.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _pool_key(up: UpstreamConfig) -> tuple[Any, ...]:
    return (up.url, up.tls, up.pool, up.connect_timeout)


class HttpAdapter(Adapter):
    def __init__(self, services: AdapterServices) -> None:
        super().__init__(services)
        self.pools: dict[str, tuple[tuple[Any, ...], Pool]] = {}
        self._retired: list[Pool] = []
        self._sweeper: asyncio.Task[None] | None = None
        services.metrics.pools.sources.append(self._pool_stats)

    def _pool_stats(self) -> list[tuple[str, str, int]]:
        out = []
        for name, (_, pool) in self.pools.items():
            idle, busy = pool.stats()
            out += [(name, "idle", idle), (name, "busy", busy)]
        return out

    def _pool(self, name: str, up: UpstreamConfig) -> Pool:
        key = _pool_key(up)
        have = self.pools.get(name)
        if have is not None and have[0] == key:
            return have[1]
        assert up.url is not None
        parts = urlsplit(up.url)
        https = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if https else 80)
        server_name = (up.tls.server_name if up.tls is not None else None) or host
        opened = self.services.metrics.connections_opened.labels(name)
        pool = Pool(
            name,
            host,
            port,
            ssl_context=make_client_ssl_context(up.tls) if https else None,
            server_hostname=server_name,
            max_connections=up.pool.max_connections,
            max_idle=up.pool.max_idle,
            idle_timeout=up.pool.idle_timeout,
            connect_timeout=up.connect_timeout,
            on_open=opened.inc,
        )
        if have is not None:
            self._retired.append(have[1])
        self.pools[name] = (key, pool)
        return pool

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        pool = self._pool(name, upstream)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        assert upstream.url is not None
        parts = urlsplit(upstream.url)
        base = parts.path.rstrip("/")
        host_header = upstream.host or parts.netloc
        head_timeout = upstream.response_header_timeout
        attempts = self.services.metrics.upstream_attempts
        ok_attempt = attempts.labels(name, "response").inc
        failed = {
            code: attempts.labels(name, code)
            for code in (
                "upstream_connect",
                "upstream_reset",
                "upstream_protocol",
                "upstream_timeout",
                "overloaded",
            )
        }
        host_line = f"host: {host_header}\r\n"

        def head(ex: Exchange, length: int | None) -> bytes:
            out = [f"{ex.method} {base}{ex.target} HTTP/1.1\r\n", host_line]
            xff = None
            for k, v in ex.headers:
                if k == "host":
                    continue
                if k == "x-forwarded-for":
                    xff = v
                    continue
                out.append(f"{k}: {v}\r\n")
            ip = ex.client.rpartition(":")[0] if ex.client else ""
            if ip:
                out.append(
                    f"x-forwarded-for: {xff}, {ip}\r\n" if xff else f"x-forwarded-for: {ip}\r\n"
                )
            elif xff:
                out.append(f"x-forwarded-for: {xff}\r\n")
            if length is None:
                out.append("transfer-encoding: chunked\r\n\r\n")
            elif length or ex.method in ("POST", "PUT", "PATCH"):
                out.append(f"content-length: {length}\r\n\r\n")
            else:
                out.append("\r\n")
            return "".join(out).encode("latin-1")

        async def send(ex: Exchange) -> Response:
            body = ex.body
            for attempt in (0, 1):
                conn, reused = await pool.acquire()
                fut = conn.begin(ex.method == "HEAD")
                transport = conn.transport
                assert transport is not None
                try:
                    if isinstance(body, bytes):
                        transport.write(head(ex, len(body)) + body if body else head(ex, len(body)))
                        conn.request_sent = True
                        resp = await _wait_head(fut, head_timeout)
                    else:
                        resp = await _stream_request(
                            conn,
                            fut,
                            head(ex, ex.body_length),
                            body,
                            ex.body_length is None,
                            head_timeout,
                        )
                except UpstreamReset:
                    conn.abort()
                    if attempt == 0 and reused and not conn.got_bytes and isinstance(body, bytes):
                        continue  # the keep-alive race: the upstream closed it as we wrote
                    failed["upstream_reset"].inc()
                    raise
                except SidecarError as e:
                    conn.abort()
                    counter = failed.get(e.code)
                    if counter is not None:
                        counter.inc()
                    raise
                except BaseException:
                    conn.abort()  # cancelled (app gone, deadline): the exchange is half-done
                    raise
                ok_attempt()
                return resp
            raise AssertionError("unreachable")

        return send

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            for _, pool in self.pools.values():
                pool.sweep(now)

    async def retire(self, live: Mapping[str, UpstreamConfig]) -> None:
        for name in [n for n in self.pools if n not in live or live[n].adapter != "http"]:
            self._retired.append(self.pools.pop(name)[1])
        for pool in self._retired:
            pool.close()
        self._retired.clear()

    def describe(self, name: str) -> dict[str, Any]:
        have = self.pools.get(name)
        if have is None:
            return {}
        pool = have[1]
        idle, busy = pool.stats()
        return {
            "address": f"{pool.host}:{pool.port}",
            "tls": pool.ssl is not None,
            "connections": {"idle": idle, "busy": busy, "max": pool.max_connections},
            "connections_opened": pool.opened_total,
            "waiting": len(pool.waiters),
        }

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for _, pool in self.pools.values():
            pool.close()
        for pool in self._retired:
            pool.close()


async def _wait_head(fut: asyncio.Future[Response], limit: float | None) -> Response:
    if limit is None:
        return await fut
    try:
        async with asyncio.timeout(limit):
            return await fut
    except TimeoutError:
        raise UpstreamTimeout(f"no response head from upstream within {limit:g}s") from None


async def _stream_request(
    conn: UpstreamConnection,
    fut: asyncio.Future[Response],
    head: bytes,
    body: Any,
    chunked: bool,
    head_timeout: float | None,
) -> Response:
    """Send head and streaming body while waiting for the response head.

    The upstream may answer before the body is complete (an early 413, say): the response is
    returned at once, the pump goes on in the background and the connection is not reused.
    """
    transport = conn.transport
    assert transport is not None
    transport.write(head)

    async def pump() -> None:
        async for chunk in body:
            if conn.closed:
                return
            if not chunk:
                continue
            if chunked:
                transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            else:
                transport.write(chunk)
            if conn.write_paused:
                await conn.drain()
        if chunked and not conn.closed:
            transport.write(b"0\r\n\r\n")
        conn.request_sent = True

    task = asyncio.get_running_loop().create_task(pump())

    def pumped(t: asyncio.Task[None]) -> None:
        if t.cancelled():
            return
        err = t.exception()
        if err is not None:
            if not fut.done():
                fut.set_exception(err)
            conn.abort()

    task.add_done_callback(pumped)
    try:
        return await _wait_head(fut, head_timeout)
    except BaseException:
        task.cancel()
        raise


@hookimpl(trylast=True)
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add("http", HttpAdapter)
