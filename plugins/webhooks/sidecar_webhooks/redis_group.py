"""One replica's part in a Redis queue's consumer group: reading, renewing, taking over.

The replica reads due deliveries from the stream through the group (first what its consumer
held before, for the engine a reload started), at most ``prefetch`` at a time, and hands them to
the engine. Every ``claim_idle / 3`` it renews the entries it holds, takes with ``XAUTOCLAIM``
the entries of replicas that stopped renewing (they died), forgets consumers that hold nothing,
and reads what other replicas change (disabled endpoints, counts). A separate loop moves due
retries from the ``retry`` sorted set back onto the stream. Every loop survives Redis being down
(a bounded backoff) and resumes when it answers. The state changes themselves are the queue's
(:mod:`.redis_queue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio

from .queue import HandOut
from .store import Delivery

if TYPE_CHECKING:
    from .redis_queue import RedisQueue

log = logging.getLogger("sidecar.plugin.webhooks")
GROUP = "sidecar-webhooks"
#: the longest a read blocks, so a stop or a freed slot is noticed soon
READ_BLOCK = 0.5
#: the longest pause between two tries while Redis does not answer
MAX_BACKOFF = 5.0
#: a consumer that holds nothing is removed from the group after this long without a read
FORGET_CONSUMER_MS = 60_000
ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError, TimeoutError)


class GroupMember:
    """This replica in the consumer group of one Redis queue (see the module docstring)."""

    def __init__(self, queue: RedisQueue, consumer: str) -> None:
        self.queue = queue
        self.client, self.options = queue.client, queue.options
        self.stream, self.deliveries = queue.keys[0], queue.keys[1]
        #: this sidecar in the consumer group (kept across reloads, new at each start)
        self.consumer = consumer
        #: delivery key → the stream entry it came from, for the deliveries this replica holds
        self.held: dict[str, str] = {}
        self.room = asyncio.Event()
        self.room.set()
        #: set when this replica scheduled a retry: the next one may be due sooner
        self.retry_soon = asyncio.Event()

    def start(self, hand_out: HandOut) -> list[asyncio.Task[None]]:
        """The loops, as tasks the queue owns (and cancels at its stop)."""
        return [
            asyncio.create_task(self._read(hand_out)),
            asyncio.create_task(self._promote()),
            asyncio.create_task(self._renew_and_claim(hand_out)),
        ]

    def release(self, key: str) -> str:
        """This replica no longer holds the delivery: its stream entry id (or "")."""
        self.room.set()
        return self.held.pop(key, "")

    async def _ensure_group(self) -> None:
        with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists already
            await self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)

    async def _take(self, entries: Sequence[Any], hand_out: HandOut) -> None:
        """Hand out the deliveries of stream entries; settle entries whose delivery is gone."""
        for entry_id, fields in entries:
            entry = entry_id.decode()
            key = (fields or {}).get(b"key", b"").decode()
            raw = await self.queue.call(self.client.hget(self.deliveries, key)) if key else None
            delivery = _parsed(raw)
            if self.held.get(key) == entry:
                continue  # already ours (taken back by XAUTOCLAIM after a slow renewal)
            if delivery is None or delivery.state != "pending" or key in self.held:
                # finished meanwhile, or a second entry of a delivery held here: drop it
                await self.queue.call(self.client.xack(self.stream, GROUP, entry))
                await self.queue.call(self.client.xdel(self.stream, entry))
                continue
            self.held[key] = entry
            hand_out(delivery)
        if len(self.held) >= self.options.prefetch:
            self.room.clear()

    async def _read(self, hand_out: HandOut) -> None:
        """Read what this consumer held before (an engine a reload replaced), then new entries
        through the group, while this replica has room."""
        backoff = 0.1
        await self._retrying(self._ensure_group)
        after = "0"  # "0": this consumer's own unfinished entries; ">": entries never read
        while True:
            await self.room.wait()
            room = self.options.prefetch - len(self.held)
            if room <= 0:
                self.room.clear()
                continue
            try:
                reply: Any = await self.queue.reader.xreadgroup(
                    GROUP,
                    self.consumer,
                    {self.stream: after},
                    count=room,
                    block=int(READ_BLOCK * 1000),
                )
                entries = reply[0][1] if reply else []
                if after != ">":
                    after = entries[-1][0].decode() if entries else ">"
                await self._take(entries, hand_out)
                backoff = 0.1
            except Exception as e:  # noqa: BLE001 (Redis errors, or a bad entry: the loop goes on)
                if "NOGROUP" in str(e):  # Redis came back without its data: start afresh
                    await self._retrying(self._ensure_group)
                    continue
                backoff = await self._pause("reading the stream", e, backoff)

    async def _promote(self) -> None:
        """Move due retries onto the stream; sleep until the next one is due (at most 1 s,
        since other replicas add retries too)."""
        backoff = 0.1
        while True:
            try:
                moved, after = await self.queue.run("promote", [time.time(), 100])
                backoff = 0.1
            except Exception as e:  # noqa: BLE001 (the loop must go on)
                backoff = await self._pause("moving due retries", e, backoff)
                continue
            if moved:
                continue  # there may be more due
            wait = min(float(after) - time.time(), 1.0) if after else 1.0
            self.retry_soon.clear()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.retry_soon.wait(), wait)

    async def _renew_and_claim(self, hand_out: HandOut) -> None:
        """Renew what this replica holds; take over what a dead replica held; forget consumers
        that hold nothing (each restart makes a new one); refresh the disabled endpoints."""
        idle_ms = int(self.options.claim_idle * 1000)
        # a live consumer reads every READ_BLOCK whenever it holds nothing: one that held
        # nothing and did not read for this long is gone
        forget_ms = max(idle_ms, FORGET_CONSUMER_MS)
        cursor = "0-0"
        while True:
            await asyncio.sleep(self.options.claim_idle / 3)
            try:
                if self.held:
                    _, lost = await self.queue.run(
                        "renew", [GROUP, self.consumer, *self.held.values()]
                    )
                    gone = set(lost.split())
                    for key, entry in list(self.held.items()):
                        if entry in gone:
                            del self.held[key]
                room = self.options.prefetch - len(self.held)
                if room > 0:
                    reply = await self.queue.call(
                        self.client.xautoclaim(
                            self.stream, GROUP, self.consumer, idle_ms, cursor, count=room
                        )
                    )
                    # a long list of pending entries is scanned a part per round
                    cursor = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
                    await self._take(reply[1], hand_out)
                await self.queue.refresh()
                for c in await self.queue.call(self.client.xinfo_consumers(self.stream, GROUP)):
                    name = c["name"].decode()
                    if c["pending"] == 0 and c["idle"] > forget_ms and name != self.consumer:
                        await self.queue.call(
                            self.client.xgroup_delconsumer(self.stream, GROUP, name)
                        )
            except Exception as e:  # noqa: BLE001 (the loop must go on)
                log.warning(
                    "webhooks redis queue: renewing failed, trying again",
                    extra={"fields": {"reason": str(e)}},
                )

    async def _retrying(self, step: Any) -> None:
        backoff = 0.1
        while True:
            try:
                return await step()  # type: ignore[no-any-return]
            except ERRORS as e:
                backoff = await self._pause("creating the consumer group", e, backoff)

    async def _pause(self, doing: str, error: BaseException, backoff: float) -> float:
        log.warning(
            f"webhooks redis queue: {doing} failed, trying again",
            extra={"fields": {"reason": type(error).__name__, "in_s": backoff}},
        )
        await asyncio.sleep(backoff)
        return min(backoff * 2, MAX_BACKOFF)


def _parsed(raw: bytes | None) -> Delivery | None:
    """A delivery's state as kept in Redis, or ``None`` when it is gone or unreadable."""
    if raw is None:
        return None
    try:
        return Delivery.from_json(raw)
    except (ValueError, TypeError, KeyError):
        log.error("webhooks redis queue: a delivery's state cannot be read; it is dropped")
        return None
