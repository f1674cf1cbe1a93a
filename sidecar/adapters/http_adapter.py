"""The plain HTTP/1.1 adapter's code: :class:`HttpAdapter` (registered by :mod:`.http`).

For each upstream it keeps one bounded keep-alive :class:`~sidecar.upstream.pool.Pool` and builds
the terminal handler of its routes: write the request head (``Host`` rewritten to the upstream,
``X-Forwarded-For`` appended), stream the body with back-pressure, return the response when its
head arrives. Pools are keyed by everything a connection depends on, so a reload that leaves an
upstream's address and TLS alone keeps its warm connections; a pool built for a reload is only
put in service (and the one it replaces closed) once that reload's route table is live.

A request on a reused connection that fails before any response byte (the upstream closed the idle
connection as we wrote: the keep-alive race) is sent once more on a fresh connection when that is
safe: the body is in memory and the method is idempotent or the request has an
``Idempotency-Key`` (the upstream may have read the request before closing). This is not a retry
policy; that comes with the resilience filters.
"""

from __future__ import annotations

__all__ = ["HttpAdapter"]

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from ..api import Adapter, AdapterServices
from ..chain import Handler
from ..config.models import UpstreamConfig
from ..errors import SidecarError, UpstreamReset, UpstreamTimeout
from ..exchange import Exchange, Response
from ..resilience.deadlines import DeadlineWheel
from ..resilience.idempotency import may_repeat
from ..upstream.connection import UpstreamConnection
from ..upstream.pool import Pool
from ..upstream.tls import client_ssl_context
from ..waiter import current_task

if TYPE_CHECKING:
    from ..telemetry.metrics import UpstreamAttempts

_PoolEntry = tuple[tuple[Any, ...], Pool]


def _pool_key(up: UpstreamConfig) -> tuple[Any, ...]:
    return (up.url, up.tls, up.pool, up.connect_timeout)


class HttpAdapter(Adapter):
    #: the adapter name upstreams use to pick this adapter.
    name = "http"

    def __init__(self, services: AdapterServices) -> None:
        super().__init__(services)
        #: pools the live route table uses, by upstream name.
        self.pools: dict[str, _PoolEntry] = {}
        #: pools built for a reload whose route table is not live yet (see :meth:`retire`).
        self._pending: dict[str, _PoolEntry] = {}
        self._sweeper: asyncio.Task[None] | None = None
        #: upstreams of other adapters whose routes borrowed a handler since the last retire
        self._lent: set[str] = set()
        services.metrics.pools.sources.append(self._pool_stats)

    def _pool_stats(self) -> list[tuple[str, str, int]]:
        out = []
        for name, (_, pool) in self.pools.items():
            idle, busy = pool.stats()
            out += [(name, "idle", idle), (name, "busy", busy)]
        return out

    def _pool(self, name: str, up: UpstreamConfig) -> Pool:
        key = _pool_key(up)
        for table in (self.pools, self._pending):
            have = table.get(name)
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
            ssl_context=client_ssl_context(up.tls) if https else None,
            server_hostname=server_name,
            max_connections=up.pool.max_connections,
            max_idle=up.pool.max_idle,  # None: up to max_connections
            idle_timeout=up.pool.idle_timeout,
            connect_timeout=up.connect_timeout,
            on_open=opened.inc,
        )
        if name in self.pools:
            # a reload changed the address or TLS: in service once the new table is live
            stale = self._pending.get(name)
            if stale is not None:
                stale[1].close()  # built by a reload that was refused: never used
            self._pending[name] = (key, pool)
        else:
            self.pools[name] = (key, pool)
        return pool

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        pool = self._pool(name, upstream)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        assert upstream.url is not None
        parts = urlsplit(upstream.url)
        head = _head_writer(parts.path.rstrip("/"), upstream.host or parts.netloc)
        attempts = self.services.metrics.attempts(name)
        return _sender(pool, head, upstream.response_header_timeout, attempts)

    def lend(self, name: str, upstream: UpstreamConfig) -> Handler:
        """The handler of upstream ``name`` for another adapter's calls (the plugin API's
        ``RouteContext.http_client``): the same pool, TLS and timeouts as an ``http``
        upstream's, kept by :meth:`retire` while the live table borrowed it."""
        self._lent.add(name)
        return self.handler(name, upstream)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            now = loop.time()
            for _, pool in self.pools.values():
                pool.sweep(now)

    async def retire(self, live: Mapping[str, UpstreamConfig]) -> None:
        """The route table built from ``live`` is in service: keep its pools, close the rest.

        In-flight calls on the old table finish on the pools they hold: a closed pool lets busy
        connections end their exchange and closes them then.
        """
        keep: dict[str, _PoolEntry] = {}
        # lent since the last retire: by the composition of the table now live (a refused
        # reload's names only keep a pool one reload longer)
        lent, self._lent = self._lent, set()
        for name, up in live.items():
            if up.adapter != self.name and name not in lent:
                continue
            key = _pool_key(up)
            for table in (self._pending, self.pools):
                have = table.get(name)
                if have is not None and have[0] == key:
                    keep[name] = have
                    break
        for table in (self.pools, self._pending):
            for name, (_, pool) in table.items():
                kept = keep.get(name)
                # the pools compared, not the entries: a compiled build boxes a fixed-length
                # tuple anew on each read, so an entry is never the same object twice
                if kept is None or kept[1] is not pool:
                    pool.close()
        self.pools = keep
        self._pending = {}

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
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        for table in (self.pools, self._pending):
            for _, pool in table.values():
                pool.close()


#: the ``X-Forwarded-For`` line of an app (``"ip:port"``) whose call brought none, kept for the
#: next call: one per connection, so the table is emptied when full
_XFF_LINES: Final[dict[str, str]] = {}
_XFF_LINES_MAX: Final = 1024


def _xff_line(client: str) -> str:
    ip = client.rpartition(":")[0] if client else ""
    line = f"x-forwarded-for: {ip}\r\n" if ip else ""
    if len(_XFF_LINES) >= _XFF_LINES_MAX:
        _XFF_LINES.clear()
    _XFF_LINES[client] = line
    return line


class _HeadWriter:
    """What writes a request head for one upstream: its base path before the path, ``Host``
    rewritten to its authority, ``X-Forwarded-For`` appended, framing for ``length`` (``None``:
    chunked).

    An app sends the same headers call after call: the header lines written last are kept with
    a copy of the headers they came from, and written again while a call's headers equal that
    copy (a compared copy, never the call's own list, which a filter may change in place).
    One entry per upstream: its last call's headers, within the listener's header size limit.
    """

    def __init__(self, base: str, authority: str) -> None:
        self.base = base
        self.version_host = f" HTTP/1.1\r\nhost: {authority}\r\n"
        self.last_items: list[tuple[str, str]] | None = None
        #: the header lines of ``last_items`` (Host and X-Forwarded-For left out), and the
        #: X-Forwarded-For values among them, merged (``None``: none)
        self.last_lines = ""
        self.last_xff: str | None = None

    def write(self, ex: Exchange, length: int | None) -> bytes:
        items = ex.headers.items()
        if _same_pairs(items, self.last_items):
            lines = self.last_lines
            xff = self.last_xff
        else:
            lines, xff = _header_lines(items)
            self.last_items = list(items)
            self.last_lines = lines
            self.last_xff = xff
        client = ex.client
        if not xff:  # none, or an empty line: only the app's address, as before the cache
            forwarded = _XFF_LINES.get(client)  # a connection's every call: one lookup
            if forwarded is None:
                forwarded = _xff_line(client)
        else:
            ip = client.rpartition(":")[0] if client else ""
            forwarded = f"x-forwarded-for: {xff}, {ip}\r\n" if ip else f"x-forwarded-for: {xff}\r\n"
        if length is None:
            framing = "transfer-encoding: chunked\r\n\r\n"
        elif length or ex.method in ("POST", "PUT", "PATCH"):
            framing = f"content-length: {length}\r\n\r\n"
        else:
            framing = "\r\n"
        # one f-string: its pieces copied once into one str (a list and a join cost more)
        query = ex.query
        if query:
            head = (
                f"{ex.method} {self.base}{ex.path}?{query}{self.version_host}{lines}{forwarded}"
                f"{framing}"
            )
        else:
            head = f"{ex.method} {self.base}{ex.path}{self.version_host}{lines}{forwarded}{framing}"
        return head.encode("latin-1")


def _same_pairs(items: list[tuple[str, str]], kept: list[tuple[str, str]] | None) -> bool:
    """``items == kept``, pair by pair: a list comparison of tuples goes through generic
    comparisons, at several times the cost."""
    if kept is None or len(items) != len(kept):
        return False
    for i in range(len(items)):
        name, value = items[i]
        kept_name, kept_value = kept[i]
        if name != kept_name or value != kept_value:
            return False
    return True


def _header_lines(items: list[tuple[str, str]]) -> tuple[str, str | None]:
    """The header lines a request head carries on (``Host`` and ``X-Forwarded-For`` left out)
    as one str, and the ``X-Forwarded-For`` values merged (``None``: none)."""
    out: list[str] = []
    xff = None
    for k, v in items:
        if k == "host":
            continue
        if k == "x-forwarded-for":
            xff = v if xff is None else f"{xff}, {v}"
            continue
        out.append(k)
        out.append(": ")
        out.append(v)
        out.append("\r\n")
    return "".join(out), xff


def _head_writer(base: str, authority: str) -> _HeadWriter:
    """The request head writer of one upstream (see :class:`_HeadWriter`)."""
    return _HeadWriter(base, authority)


def _sender(
    pool: Pool,
    head: _HeadWriter,
    head_timeout: float | None,
    attempts: UpstreamAttempts,
) -> Handler:
    """The terminal handler of one upstream: take a connection, write the request, return the
    response once its head arrived."""
    # every attempt counts once with its outcome: a response, the error that ended it, or
    # "cancelled" (the deadline or a per-try timeout cut it, the app went away)
    responses, count_failure = attempts.responses, attempts.failed
    # the head timeout's coarse timers (see sidecar.resilience.deadlines): asyncio.timeout
    # would cost about 4 µs and three getpid() system calls per call
    wheel = DeadlineWheel()

    async def send(ex: Exchange) -> Response:
        # one coroutine frame per call: acquire, write, wait for the head; a loop only for the
        # keep-alive race resend
        fresh = False
        while True:
            conn = None if fresh else pool.take_idle()  # no coroutine when one is idle
            if conn is not None:
                reused = True
            else:
                try:
                    conn, reused = await pool.acquire(fresh)
                except BaseException as e:
                    count_failure(e)
                    raise
            transport = conn.transport
            assert transport is not None
            body = ex.body
            fut: asyncio.Future[Response] | None = None
            try:
                if isinstance(body, bytes):
                    h = head.write(ex, len(body))  # a method: a direct call, compiled
                    # at once, or at the end of the loop's pass with the other calls' writes;
                    # the exchange begun after the write, so the upstream starts on the request
                    # while the call gets ready for the answer (which is read on a later pass
                    # of the loop, after this step has awaited it)
                    conn.write_later(h + body if body else h)
                    fut = conn.begin(ex.method == "HEAD", ex._wake)
                    conn.request_sent = True
                else:
                    fut = conn.begin(ex.method == "HEAD", ex._wake)
                    length = ex.body_length
                    _start_streaming(conn, fut, head.write(ex, length), body, length is None)
                if head_timeout is None:
                    resp = await fut
                else:
                    resp = await _wait_head(fut, head_timeout, wheel)
            except SidecarError as e:
                conn.abort()  # on any failure the connection is closed, never reused
                count_failure(e)
                if not fresh and reused and _lost_keep_alive_race(e, conn, ex):
                    fresh = True  # send once more, on a new connection
                    continue
                raise
            except BaseException as e:
                # cancelled (app gone, deadline): the exchange is half-done, its connection not
                # to be used again; unless the connection already ended it and carries
                # another call (the answer came as the cancellation did)
                if fut is None or conn.carries(fut):
                    conn.abort()
                count_failure(e)
                raise
            responses.value += 1  # an attempt answered (the child's inc, without a call)
            return resp

    return send


def _lost_keep_alive_race(error: SidecarError, conn: UpstreamConnection, ex: Exchange) -> bool:
    """Whether an attempt on a reused connection failed as the keep-alive race fails (the
    upstream closed the idle connection as we wrote on it, no response byte came) and its
    request may be sent again."""
    return isinstance(error, UpstreamReset) and not conn.got_bytes and _replayable(ex)


def _replayable(ex: Exchange) -> bool:
    """Whether a request that may have reached the upstream can be sent again unchanged."""
    if not isinstance(ex.body, bytes):
        return False  # a stream was consumed by the first attempt
    return may_repeat(ex)  # an idempotent method, or an Idempotency-Key


async def _wait_head(fut: asyncio.Future[Response], limit: float, wheel: DeadlineWheel) -> Response:
    """The response head, or :class:`UpstreamTimeout` once ``limit`` passed without it (only
    when the limit was the sole reason the wait was cancelled: the app going away, or the
    call's own deadline, at the same moment stay what they are)."""
    loop = fut.get_loop()
    task = current_task(loop)
    assert task is not None  # the call's task waits here
    entry = wheel.add(loop, task, loop.time() + limit)
    try:
        resp = await fut
    except BaseException as e:
        if wheel.leave(entry, isinstance(e, asyncio.CancelledError)):
            raise UpstreamTimeout(f"no response head from upstream within {limit:g}s") from None
        raise
    wheel.leave(entry)
    return resp


def _start_streaming(
    conn: UpstreamConnection,
    fut: asyncio.Future[Response],
    head: bytes,
    body: AsyncIterator[bytes],
    chunked: bool,
) -> None:
    """Send the head, then pump the body in a task owned by ``conn``; the caller waits for
    ``fut``, the response head.

    The upstream may answer before the body is complete (an early 413, say): the caller gets the
    response at once, the pump goes on and the connection is not reused (``request_sent`` stays
    false until the pump ends). The pump stops when the connection closes.
    """
    transport = conn.transport
    assert transport is not None
    conn.flush_writes()  # nothing is held on a connection between calls; kept in order if it were
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
        if conn.closed:
            return
        if chunked:
            transport.write(b"0\r\n\r\n")
        conn.request_sent = True

    task = conn.pump = asyncio.get_running_loop().create_task(pump())
    task.add_done_callback(_pumped(conn, fut))


def _pumped(
    conn: UpstreamConnection, fut: asyncio.Future[Response]
) -> Callable[[asyncio.Task[None]], None]:
    def done(t: asyncio.Task[None]) -> None:
        conn.pump = None
        if t.cancelled():
            return
        err = t.exception()
        if err is not None:
            # the app's body failed (cut, too large) or the upstream went away: the exchange
            # cannot complete; the caller waiting for the head gets the reason
            if not fut.done():
                fut.set_exception(
                    err if isinstance(err, SidecarError) else UpstreamReset(f"request body: {err}")
                )
            conn.abort()

    return done
