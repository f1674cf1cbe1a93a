"""The Redis Streams queue: replicas of a sidecar share one upstream's deliveries.

Imported only when an upstream configures ``redis`` (redis-py stays out of every other sidecar).
Each state change is one Lua script (:mod:`.redis_scripts`): an event is kept (body, deliveries,
one stream entry per delivery) by one script whose reply is the app's 202, so with
``appendonly yes`` and ``appendfsync always`` an accepted event is on Redis's disk.

Sharing (:mod:`.redis_group`): every replica reads the stream through one consumer group, so
each due delivery goes to one replica. A replica renews the entries it holds (resets their idle
time) every third of ``claim_idle``; entries of a replica that died stop being renewed and
another replica takes them with ``XAUTOCLAIM`` once idle for ``claim_idle``. A failed delivery
leaves the stream for the ``retry`` sorted set; any replica moves it back onto the stream when
it is due. At least once: a replica paused longer than ``claim_idle`` (or one whose outcome
could not be written while Redis was down) may send a delivery another replica also sends.

Bounds: the stream holds only due and in-flight deliveries (an entry is deleted when its
delivery is finished or waits for a retry) and is never trimmed with ``MAXLEN``, which would drop
undelivered work silently; instead ``max_pending`` refuses new events (503). Each replica holds
at most ``prefetch`` deliveries. Redis down: adds raise QueueDown (503 for the app), the loops
retry with a bounded backoff and resume when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .config import RedisQueueOptions
from .queue import Added, Counted, HandOut, QueueDown, QueueFull
from .redis_group import ERRORS, GROUP, READ_BLOCK, GroupMember
from .redis_scripts import ADD, DEAD, DELIVERED, KEY_NAMES, PROMOTE, REDELIVER, RENEW, RESCHEDULE
from .store import Delivery, State

log = logging.getLogger("sidecar.plugin.webhooks")


class RedisQueue:
    """A :class:`.queue.Queue` in Redis Streams (see the module docstring)."""

    def __init__(
        self,
        upstream: str,
        options: RedisQueueOptions,
        password: str | None,
        max_pending: int,
        max_dead: int,
        consumer: str,
    ) -> None:
        prefix = f"{options.key_prefix}{{{upstream}}}:"
        self.keys = [prefix + name for name in KEY_NAMES]
        self.where = f"redis {_without_credentials(options.url)} {prefix}stream"
        self.options = options
        self.max_pending, self.max_dead = max_pending, max_dead
        common: dict[str, Any] = {
            "password": password,
            "socket_connect_timeout": options.timeout,
            "retry": Retry(NoBackoff(), 1),  # one more try on a fresh connection, no waiting
        }
        self.client = redis.asyncio.Redis.from_url(
            options.url, socket_timeout=options.timeout, **common
        )
        # the blocking read waits READ_BLOCK in Redis: its socket may wait that much longer
        self.reader = redis.asyncio.Redis.from_url(
            options.url, socket_timeout=options.timeout + READ_BLOCK, **common
        )
        self._scripts = {
            name: self.client.register_script(text)
            for name, text in (
                ("add", ADD),
                ("reschedule", RESCHEDULE),
                ("delivered", DELIVERED),
                ("dead", DEAD),
                ("redeliver", REDELIVER),
                ("promote", PROMOTE),
                ("renew", RENEW),
            )
        }
        self.member = GroupMember(self, consumer)
        self._disabled: set[str] = set()
        self._counted: Counted = lambda endpoint, state, n: None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, hand_out: HandOut, counted: Counted) -> None:
        """Start the loops; Redis need not answer yet (they wait for it)."""
        self._counted = counted
        with contextlib.suppress(QueueDown):  # else the renewing loop reads them later
            await self.refresh()
        self._tasks = self.member.start(hand_out)

    async def stop(self) -> None:
        """Stop the loops. What this replica holds stays pending in the group under its consumer
        name: the engine a reload starts reads it back at once; after a shutdown another replica
        takes it after ``claim_idle``."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in (self.client, self.reader):
            with contextlib.suppress(*ERRORS):
                await client.aclose()

    async def add(self, msg_id: str, body: bytes, deliveries: Sequence[Delivery]) -> Added:
        args: list[Any] = [msg_id, body, self.max_pending, time.time()]
        for d in deliveries:
            args += [d.endpoint, d.key, d.to_json()]
        status, text = await self.run("add", args)
        if status == 2:
            raise QueueFull
        return Added(text.split(), repeat=status == 1)

    def is_disabled(self, endpoint: str) -> bool:
        return endpoint in self._disabled

    async def set_disabled(self, endpoint: str, disabled: bool) -> None:
        (self._disabled.add if disabled else self._disabled.discard)(endpoint)
        command = self.client.sadd if disabled else self.client.srem
        await self.call(command(self.keys[9], endpoint))

    async def body(self, delivery: Delivery) -> bytes:
        raw = await self.call(self.client.hget(self.keys[2], delivery.msg_id))
        if raw is None:
            raise LookupError(delivery.msg_id)
        return bytes(raw)

    async def reschedule(self, delivery: Delivery) -> None:
        entry = self.member.release(delivery.key)
        args = [delivery.key, delivery.to_json(), delivery.next_at, entry, GROUP]
        if await self._settle("reschedule", args):
            self.member.retry_soon.set()

    async def delivered(self, delivery: Delivery) -> None:
        entry = self.member.release(delivery.key)
        args = [delivery.key, delivery.msg_id, delivery.endpoint, entry, GROUP]
        await self._settle("delivered", args)

    async def dead(self, delivery: Delivery) -> None:
        entry = self.member.release(delivery.key)
        delivery.state = "dead"
        args: list[Any] = [delivery.key, delivery.msg_id, delivery.endpoint, delivery.to_json()]
        await self._settle("dead", [*args, delivery.created, entry, GROUP, self.max_dead])

    async def redeliver(self, key: str, endpoints: set[str]) -> Delivery | None:
        raw = await self.call(self.client.hget(self.keys[1], key))
        if raw is None:
            return None
        delivery = Delivery.from_json(raw)
        if delivery.state != "dead" or delivery.endpoint not in endpoints:
            return None
        delivery.state, delivery.attempts, delivery.next_at = "pending", 0, time.time()
        args = [key, delivery.to_json(), delivery.created, delivery.endpoint]
        status, _ = await self.run("redeliver", args)
        return delivery if status == 1 else None

    async def listing(self, state: State, limit: int) -> tuple[int, list[Delivery]]:
        index = self.keys[5] if state == "pending" else self.keys[6]
        total = await self.call(self.client.zcard(index))
        keys = await self.call(self.client.zrange(index, 0, limit - 1))
        raws = await self.call(self.client.hmget(self.keys[1], keys)) if keys else []
        return int(total), [Delivery.from_json(raw) for raw in raws if raw is not None]

    async def counts(self) -> dict[tuple[str, str], int]:
        raw = await self.call(self.client.hgetall(self.keys[8]))
        out: dict[tuple[str, str], int] = {}
        for field, value in raw.items():
            endpoint, _, state = field.decode().partition(" ")
            out[(endpoint, state)] = int(value)
        return out

    async def refresh(self) -> None:
        """Read what other replicas change too: the disabled endpoints and the counts."""
        members = await self.call(self.client.smembers(self.keys[9]))
        self._disabled = {m.decode() for m in members}
        for (endpoint, state), n in (await self.counts()).items():
            self._counted(endpoint, state, n)

    async def call(self, awaitable: Any) -> Any:
        """One command's reply; any Redis or connection failure becomes QueueDown."""
        try:
            return await awaitable
        except ERRORS as e:
            raise QueueDown(type(e).__name__) from None

    async def run(self, script: str, args: Sequence[Any]) -> tuple[int, str]:
        """Run one script; report the counts it moved; its status and text."""
        status, text, changed = await self.call(self._scripts[script](self.keys, list(args)))
        for i in range(0, len(changed), 3):
            self._counted(changed[i].decode(), changed[i + 1].decode(), int(changed[i + 2]))
        return int(status), text.decode() if isinstance(text, bytes) else str(text)

    async def _settle(self, script: str, args: Sequence[Any]) -> bool:
        """Write an outcome; when Redis cannot take it, the entry stays in the group un-renewed
        and is taken again after ``claim_idle`` (the delivery may then be sent again)."""
        try:
            await self.run(script, args)
        except QueueDown as e:
            log.warning(
                "webhooks redis queue: an outcome could not be written, the delivery will be"
                " sent again",
                extra={"fields": {"reason": str(e), "delivery": args[0]}},
            )
            return False
        return True


def _without_credentials(url: str) -> str:
    """The URL without a user or password in it (the admin view shows it)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
