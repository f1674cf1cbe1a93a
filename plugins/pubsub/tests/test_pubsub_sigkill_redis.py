"""Nothing lost when the sidecar is SIGKILLed (Redis Streams): every publish it confirmed is
in the stream, and every message reaches the app at least once after a restart, with exactly
the poison messages in the dead-letter topic."""

from __future__ import annotations

import json

import httpx
from pubsub_app import Stream, prefix, subscribed_config
from pubsub_brokers import RedisBroker
from pubsub_sigkill import MidBatchKill, batch, confirmed_before_sigkill, started


async def test_every_confirmed_publish_is_in_the_stream_after_a_sigkill(
    redis_broker: RedisBroker,
) -> None:
    """Publishers racing a SIGKILL: each 204 they got is in the stream; a restart publishes on."""
    p = prefix()
    orders = Stream(redis_broker.url, f"{p}orders")
    config = subscribed_config(redis_broker.url, "http://127.0.0.1:9", p)
    del config["upstreams"]["events"]["options"]["subscriptions"]
    try:
        confirmed = await confirmed_before_sigkill(config, "orders", enough=200)
        assert set(confirmed) <= {e["id"] for e in orders.events()}
        proc = await started(config)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.post(f"{proc.http_url}/events/orders", content=b"after")
        finally:
            proc.kill()
        assert r.status_code == 204
        assert r.headers["ce-id"] in {e["id"] for e in orders.events()}
    finally:
        orders.close()


async def test_every_message_reaches_the_app_after_a_sigkill_mid_batch(
    redis_broker: RedisBroker,
) -> None:
    """Killed with deliveries in flight and restarted, the sidecar delivers every message at
    least once, and the dead-letter topic holds the poison messages and nothing else."""
    p = prefix()
    orders = Stream(redis_broker.url, f"{p}orders")
    dlq = Stream(redis_broker.url, f"{p}orders.dlq")

    async def nothing_pending() -> bool:
        return orders.pending() == 0

    async def dead_letters() -> set[str]:
        return {e["id"] for e in dlq.events()}

    try:
        for event in batch():
            orders.client.xadd(orders.key, {"event": json.dumps(event)})
        async with MidBatchKill() as run:
            config = subscribed_config(redis_broker.url, run.app_url, p, concurrency=4)
            await run.start(config)
            await run.kill_while_held()
            await run.start(config)  # the same consumer name: reads its pending entries first
            await run.until_every_message_delivered()
            await run.until_settled(nothing_pending, "every message acknowledged")
            await run.check_dead_letters(dead_letters)
        run.check_held_delivered_again()
    finally:
        orders.close()
        dlq.close()
