"""The upstream connection pool: bounds, reuse, expiry, loss and hand-off, with no sockets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from sidecar.adapters.http import HttpAdapter
from sidecar.api import AdapterServices
from sidecar.config.models import UpstreamConfig
from sidecar.errors import Overloaded, UpstreamConnectError
from sidecar.telemetry.metrics import Metrics
from sidecar.upstream.connection import UpstreamConnection
from sidecar.upstream.pool import Pool
from tests.unit.fake_transport import FakeConnector, respond, settle

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@pytest.fixture
async def connector(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeConnector]:
    fake = FakeConnector()
    monkeypatch.setattr(asyncio.get_running_loop(), "create_connection", fake)
    yield fake


def _pool(**kw: float) -> Pool:
    opts = {"max_connections": 2, "max_idle": 2, "idle_timeout": 60.0, "connect_timeout": 0.05}
    opts.update(kw)
    return Pool("up", "127.0.0.1", 8080, **opts)  # type: ignore[arg-type]


def _finish(conn: UpstreamConnection) -> None:
    """Complete one exchange on ``conn`` (the pool gets it back)."""
    respond(conn, OK).result()


async def test_past_max_connections_a_call_waits_then_is_overloaded(
    connector: FakeConnector,
) -> None:
    """At most `max_connections` are open; the next call waits `connect_timeout`, then 503."""
    pool = _pool()
    await pool.acquire()
    await pool.acquire()
    with pytest.raises(Overloaded, match="all 2 connections"):
        await pool.acquire()
    assert pool.open == 2 and len(connector.made) == 2 and not pool.waiters


async def test_a_waiting_call_gets_the_connection_freed_first(connector: FakeConnector) -> None:
    """A waiter is handed the next connection that finishes, without opening a new one."""
    pool = _pool(max_connections=1)
    conn, _ = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await settle()
    assert len(pool.waiters) == 1
    _finish(conn)
    assert await waiting == (conn, True)
    assert pool.opened_total == 1


async def test_a_lost_connection_lets_a_waiter_open_a_new_one(connector: FakeConnector) -> None:
    """When a busy connection dies, its slot goes to the first waiter, still within the bound."""
    pool = _pool(max_connections=1)
    conn, _ = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await settle()
    conn.abort()
    new, reused = await waiting
    assert new is not conn and not reused
    assert pool.open == 1 and pool.opened_total == 2


async def test_a_connection_handed_to_a_cancelled_waiter_is_not_lost(
    connector: FakeConnector,
) -> None:
    """The waiter is cancelled (app gone, deadline) just as a connection is handed to it: the
    connection goes back to the pool instead of leaking a slot."""
    pool = _pool(max_connections=1)
    conn, _ = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await settle()
    _finish(conn)  # handed to the waiter...
    waiting.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pool.idle == [conn] and pool.open == 1
    assert await pool.acquire() == (conn, True)


async def test_a_slot_handed_to_a_cancelled_waiter_is_released(connector: FakeConnector) -> None:
    """Same race when the waiter was handed a free slot: the slot is released, not leaked."""
    pool = _pool(max_connections=1)
    conn, _ = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await settle()
    conn.abort()
    await asyncio.sleep(0)  # connection_lost runs: the slot is handed over
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pool.open == 0
    await pool.acquire()
    assert pool.open == 1


async def test_only_max_idle_connections_are_kept(connector: FakeConnector) -> None:
    """After a burst, at most `max_idle` connections stay open for reuse."""
    pool = _pool(max_connections=3, max_idle=1)
    conns = [(await pool.acquire())[0] for _ in range(3)]
    for c in conns:
        _finish(c)
    await settle()
    assert pool.idle == [conns[0]] and pool.open == 1
    assert [c.closed for c in conns] == [False, True, True]


async def test_by_default_every_connection_of_a_burst_stays_for_reuse(
    connector: FakeConnector,
) -> None:
    """With more calls in flight than any fixed idle cap, connections are reused, not reopened."""
    pool = Pool("up", "127.0.0.1", 8080, max_connections=100, connect_timeout=0.05)
    conns = [(await pool.acquire())[0] for _ in range(100)]
    for c in conns:
        _finish(c)
    await settle()
    assert len(pool.idle) == 100 and not any(c.closed for c in conns)
    again = [await pool.acquire() for _ in range(100)]
    assert all(reused for _, reused in again) and len(connector.made) == 100


async def test_the_default_pool_config_keeps_idle_connections_up_to_max_connections() -> None:
    """`pool.max_idle` unset means as many idle connections as `max_connections` allows."""
    adapter = HttpAdapter(AdapterServices(Metrics(), logging.getLogger("test")))
    up = UpstreamConfig(url="http://127.0.0.1:9", pool={"max_connections": 300})
    pool = adapter._pool("up", up)
    assert pool.max_idle == 300
    pool.close()


async def test_most_recently_used_idle_connection_is_reused_first(
    connector: FakeConnector,
) -> None:
    """Reuse is LIFO so the extra connections of a burst age out."""
    pool = _pool()
    a, _ = await pool.acquire()
    b, _ = await pool.acquire()
    _finish(a)
    _finish(b)
    assert await pool.acquire() == (b, True)


async def test_sweep_closes_connections_idle_past_the_timeout(connector: FakeConnector) -> None:
    """Idle connections are closed after `idle_timeout`, not before."""
    pool = _pool(idle_timeout=10.0)
    conn, _ = await pool.acquire()
    _finish(conn)
    now = asyncio.get_running_loop().time()
    pool.sweep(now + 5)
    assert pool.idle == [conn]
    pool.sweep(now + 11)
    await settle()
    assert pool.idle == [] and conn.closed and pool.open == 0


async def test_an_expired_idle_connection_is_never_handed_out(connector: FakeConnector) -> None:
    """A connection past its expiry (the sweep has not run yet) is closed, and a new one opened."""
    pool = _pool()
    conn, _ = await pool.acquire()
    _finish(conn)
    conn.expires = asyncio.get_running_loop().time() - 1
    new, reused = await pool.acquire()
    assert new is not conn and not reused
    await settle()
    assert conn.closed and pool.open == 1


async def test_upstream_keep_alive_timeout_shortens_the_idle_life(
    connector: FakeConnector,
) -> None:
    """`Keep-Alive: timeout=5` from the upstream: the pool stops reusing the connection a second
    before the upstream would close it (the keep-alive race)."""
    pool = _pool(idle_timeout=60.0)
    conn, _ = await pool.acquire()
    respond(conn, b"HTTP/1.1 200 OK\r\nkeep-alive: timeout=5, max=100\r\ncontent-length: 0\r\n\r\n")
    left = conn.expires - asyncio.get_running_loop().time()
    assert 3.5 < left <= 4.0


async def test_an_idle_connection_the_upstream_closes_leaves_the_pool(
    connector: FakeConnector,
) -> None:
    """Connection lost while idle: removed at once and its slot freed."""
    pool = _pool()
    conn, _ = await pool.acquire()
    _finish(conn)
    conn.connection_lost(None)
    assert pool.idle == [] and pool.open == 0
    new, reused = await pool.acquire()
    assert new is not conn and not reused


async def test_connect_refused_is_upstream_connect_with_the_reason(
    connector: FakeConnector,
) -> None:
    """A refused connect names the address and the reason, and gives its slot back."""
    connector.mode = "refuse"
    pool = _pool()
    with pytest.raises(UpstreamConnectError, match=r"127\.0\.0\.1:8080 failed: Connection refused"):
        await pool.acquire()
    assert pool.open == 0


async def test_connect_timeout_is_upstream_connect(connector: FakeConnector) -> None:
    """A connect that hangs fails after `connect_timeout` and gives its slot back."""
    connector.mode = "hang"
    pool = _pool()
    with pytest.raises(UpstreamConnectError, match="timed out after 0.05s"):
        await pool.acquire()
    assert pool.open == 0


async def test_close_ends_idle_connections_waiters_and_busy_ones_when_done(
    connector: FakeConnector,
) -> None:
    """A retired pool closes idle connections now, fails waiters, and closes busy connections
    when their exchange ends (in-flight calls finish)."""
    rested = _pool()
    idle, _ = await rested.acquire()
    _finish(idle)
    rested.close()
    await settle()
    assert idle.closed and rested.open == 0

    full = _pool(max_connections=1)
    busy, _ = await full.acquire()
    waiting = asyncio.create_task(full.acquire())
    await settle()
    full.close()
    with pytest.raises(UpstreamConnectError, match="removed"):
        await waiting
    assert not busy.closed
    _finish(busy)
    await settle()
    assert busy.closed and full.open == 0


def _adapter() -> HttpAdapter:
    return HttpAdapter(AdapterServices(Metrics(), logging.getLogger("test")))


async def test_reload_swaps_pools_only_when_the_new_table_is_live() -> None:
    """A reload that changes the URL builds a new pool, puts it in service when the reload
    commits and closes the old one; an unchanged upstream keeps its warm pool."""
    adapter = _adapter()
    a = UpstreamConfig(url="http://127.0.0.1:1")
    b = UpstreamConfig(url="http://127.0.0.1:2")
    keep = UpstreamConfig(url="http://127.0.0.1:3")
    adapter.handler("up", a)
    adapter.handler("other", keep)
    old, other = adapter.pools["up"][1], adapter.pools["other"][1]
    adapter.handler("up", b)  # the reload composes...
    assert adapter.pools["up"][1] is old  # ...but the old table still serves
    adapter.handler("other", keep)
    await adapter.retire({"up": b, "other": keep})
    new = adapter.pools["up"][1]
    assert new is not old and new.port == 2
    assert old.closed and not new.closed
    assert adapter.pools["other"][1] is other and not other.closed
    await adapter.retire({})  # the upstreams were removed from the config
    assert new.closed and other.closed and adapter.pools == {}
    await adapter.aclose()


async def test_a_refused_reload_leaves_the_live_pools_alone() -> None:
    """A reload refused after its pools were built changes nothing that serves; the next good
    reload discards the refused one's pool."""
    adapter = _adapter()
    a = UpstreamConfig(url="http://127.0.0.1:1")
    adapter.handler("up", a)
    live = adapter.pools["up"][1]
    adapter.handler("up", UpstreamConfig(url="http://127.0.0.1:9"))  # then the reload failed
    refused = adapter._pending["up"][1]
    assert adapter.pools["up"][1] is live
    assert adapter.describe("up")["address"] == "127.0.0.1:1"
    adapter.handler("up", a)  # next reload: same config as the live one
    await adapter.retire({"up": a})
    assert adapter.pools["up"][1] is live and not live.closed
    assert refused.closed
    await adapter.aclose()
    assert live.closed


async def test_a_fresh_connection_from_a_full_pool_takes_an_idle_ones_slot(
    connector: FakeConnector,
) -> None:
    """A resend after the keep-alive race asks for a fresh connection: in a full pool the idle
    connection closes and a new one opens in its slot, never counted twice."""
    pool = _pool()
    busy, _ = await pool.acquire()
    idle, _ = await pool.acquire()
    _finish(idle)
    assert pool.idle == [idle]
    conn, reused = await pool.acquire(fresh=True)
    assert not reused and conn is not idle and conn is not busy
    assert len(connector.made) == 3 and pool.open == 2 and not pool.idle
    assert idle.transport is not None and idle.transport.is_closing()
    await settle()  # the closed one's connection_lost: its slot is the new connection's
    assert pool.open == 2
    _finish(conn)
    _finish(busy)
    assert pool.stats() == (2, 0)
