"""The ``redis`` rate-limit backend: one limit shared by every replica, decided in Redis.

Each decision is one round trip: ``EVALSHA`` of a small Lua script (GCRA) that reads the key's
theoretical arrival time, admits or refuses the call, and writes the new time with an expiry, all
atomically on the server. The script uses the server's clock (``TIME``), so replicas with
skewed clocks still share one limit. When the server does not know the script yet (``NOSCRIPT``:
first use, a restart, ``SCRIPT FLUSH``) the call falls back to ``EVAL`` with the source, which
also caches it for the next ``EVALSHA``.

Decisions asked in the same event-loop turn go out together in one pipeline (still one script
and one round trip per decision, but one write and one pool checkout per batch): under
concurrency this cuts redis-py's CPU per decision by more than half. One connection pool per
backend (redis-py asyncio), bounded (``max_connections``; a batch waits for a free connection
within its callers' budget); no retries inside redis-py (the budget and the outage rules are
:mod:`.guard`'s: a caller that gives up leaves its batch to finish or fail on its own). Times
inside the script are integer microseconds, so the arithmetic is exact in Lua's doubles; rates
above 1,000,000/s are counted as 1,000,000/s.

The same connection pool also answers ``verify_hmac``'s shared replay check
(:meth:`RedisBackend.claim`, one ``SET NX`` with an expiry), so a Redis configured once serves
both.

redis-py is imported when a backend is built (start-up, a backend in the config), not with this
module: the built-in plugin registers the class in every sidecar, most of which never use it.
"""

from __future__ import annotations

__all__ = ["GCRA_SCRIPT", "RedisBackend", "RedisOptions"]

import asyncio
import hashlib
import math
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..api import Decision, Limit, RateLimitBackend
from ..config.base import Model
from ..config.policies import RateLimitBackendConfig
from ..config.types import PositiveDuration

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: KEYS[1]: the bucket. ARGV[1]: emission interval (µs, integer). ARGV[2]: burst (calls).
#: Returns {allowed (0|1), remaining calls, µs until a call would be allowed}.
GCRA_SCRIPT = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + interval
local over = new_tat - now - interval * burst
if over > 0 then
  return {0, 0, over}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat),
           'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor(-over / interval), 0}
"""
GCRA_SHA = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts so


#: one decision waiting for its batch: full key, script arguments, where the answer goes
_Pending = tuple[str, tuple[int, int], "asyncio.Future[Decision]"]


class RedisOptions(Model):
    """Keys of a ``redis`` backend beside ``type``, ``url``, ``password``, ``timeout``..."""

    #: prepended to every key the sidecar writes.
    key_prefix: str = "sidecar:rl:"
    #: connections open at once to the server (a call waits for a free one within its budget).
    max_connections: int = Field(64, ge=1, le=10_000)
    #: bound on opening one connection (the decision's own budget is usually shorter).
    connect_timeout: PositiveDuration = 1.0


class RedisBackend(RateLimitBackend):
    options_model = RedisOptions
    url_schemes = ("redis", "rediss", "unix")

    def __init__(self, name: str, config: RateLimitBackendConfig) -> None:
        from redis.asyncio import BlockingConnectionPool, Redis  # see the module docstring
        from redis.exceptions import NoScriptError

        super().__init__(name, config)
        #: what the server answers for a script it does not hold (kept: read per batch)
        self._no_script: type[Exception] = NoScriptError
        opts = self.options
        assert isinstance(opts, RedisOptions)
        self.prefix = opts.key_prefix
        password = config.password.reveal() if config.password is not None else None
        assert config.url is not None  # the config check requires it (url_schemes)
        self._pool = BlockingConnectionPool.from_url(
            config.url,
            max_connections=opts.max_connections,
            timeout=None,  # the decision's budget bounds the wait for a connection
            socket_connect_timeout=opts.connect_timeout,
            socket_timeout=max(opts.connect_timeout, config.timeout),
            password=password,
        )
        self._redis: Redis = Redis(connection_pool=self._pool)
        # the bucket parameters of each Limit, as the script takes them (built once)
        self._args: dict[Limit, tuple[int, int]] = {}
        self._pending: list[_Pending] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # one connection opened and the script loaded now, so the first call pays neither
        await self._redis.script_load(GCRA_SCRIPT)

    async def decide(self, key: str, limit: Limit) -> Decision:
        args = self._args.get(limit)
        if args is None:
            args = self._args[limit] = (max(1, round(limit.interval * 1e6)), limit.burst)
        fut: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._pending.append((self.prefix + key, args, fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._flush_scheduled = False
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Pending]) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, args, _ in batch:
                pipe.evalsha(GCRA_SHA, 1, key, *args)
            results = await pipe.execute(raise_on_error=False)
            no_script = self._no_script
            missing = [i for i, r in enumerate(results) if isinstance(r, no_script)]
            if missing:
                pipe = self._redis.pipeline(transaction=False)
                for i in missing:
                    key, args, _ = batch[i]
                    pipe.eval(GCRA_SCRIPT, 1, key, *args)
                for i, r in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
                    results[i] = r
        except Exception as e:
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        for (_, _, fut), res in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(res, Exception):
                fut.set_exception(res)
            else:
                allowed, remaining, wait_us = res
                fut.set_result(Decision(bool(allowed), int(remaining), int(wait_us) / 1e6))

    async def claim(self, key: str, ttl: float) -> bool:
        """``SET <key_prefix><key> 1 NX PX <ttl>``: ``True`` when the key was new, so exactly
        one replica sharing the server gets ``True`` (``verify_hmac``'s replay check). The expiry
        is relative, so the server's clock does not need to agree with ours."""
        created = await self._redis.set(
            self.prefix + key, b"1", nx=True, px=max(1, math.ceil(ttl * 1000))
        )
        return bool(created)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()
        await self._pool.disconnect()

    def describe(self) -> dict[str, Any]:
        return {"type": self.config.type, "url": self.config.url, "key_prefix": self.prefix}
