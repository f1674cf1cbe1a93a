"""Publishing through a real sidecar to a real redis-server: 204 only once the stream holds the
event, 503 when the broker cannot confirm, configured topics only."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import redis
import sidecar_pubsub
from pubsub_brokers import RedisBroker, free_port


def events_config(url: str, prefix: str, **options: Any) -> dict[str, Any]:
    return {
        "upstreams": {
            "events": {
                "adapter": "pubsub",
                "url": url,
                "options": {
                    "topics": ["orders", "orders.dlq"],
                    "source": "/shop",
                    "backend": {"key_prefix": prefix},
                    **options,
                },
            }
        }
    }


def stored(broker: RedisBroker, stream: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(broker.url)
    try:
        return [json.loads(fields[b"event"]) for _, fields in client.xrange(stream)]
    finally:
        client.close()


async def test_binary_publish_is_204_once_the_stream_holds_the_event(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """The 204 means the event is in the stream, with the attributes the sidecar filled."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    async with sidecar_factory(
        events_config(redis_broker.url, prefix), plugins=[sidecar_pubsub]
    ) as s:
        async with httpx.AsyncClient() as client:
            r = await client.post(
                f"http://127.0.0.1:{s.http_port}/events/orders",
                content=b'{"order":7}',
                headers={"content-type": "application/json", "ce-type": "order.placed"},
            )
    assert r.status_code == 204, r.text
    [event] = stored(redis_broker, f"{prefix}orders")
    assert event["id"] == r.headers["ce-id"]
    assert event["type"] == "order.placed" and event["source"] == "/shop"
    assert event["specversion"] == "1.0" and event["correlationid"] == event["id"]
    assert event["data"] == {"order": 7}


async def test_structured_publish_keeps_what_the_app_set(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """A structured event is stored with the app's own id, source and correlation."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    sent = {
        "specversion": "1.0",
        "id": "app-1",
        "source": "/app",
        "type": "t",
        "correlationid": "c-9",
        "causationid": "e-8",
        "data": "x",
    }
    async with sidecar_factory(
        events_config(redis_broker.url, prefix), plugins=[sidecar_pubsub]
    ) as s:
        async with httpx.AsyncClient() as client:
            r = await client.post(
                f"http://127.0.0.1:{s.http_port}/events/orders",
                content=json.dumps(sent),
                headers={"content-type": "application/cloudevents+json"},
            )
    assert r.status_code == 204, r.text
    [event] = stored(redis_broker, f"{prefix}orders")
    assert {k: event[k] for k in sent} == sent


async def test_an_unconfigured_topic_is_refused_and_not_a_metric_label(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """Only configured topics can be published to, and only they appear in the metrics."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    async with sidecar_factory(
        events_config(redis_broker.url, prefix), plugins=[sidecar_pubsub]
    ) as s:
        async with httpx.AsyncClient() as client:
            refused = await client.post(
                f"http://127.0.0.1:{s.http_port}/events/secret", content=b"x"
            )
            ok = await client.post(f"http://127.0.0.1:{s.http_port}/events/orders", content=b"x")
            metrics = (await client.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
    assert refused.status_code == 404
    assert refused.headers["x-sidecar-error"] == "unknown_topic"
    assert ok.status_code == 204
    assert (
        'sidecar_pubsub_published_total{outcome="ok",topic="orders",upstream="events"} 1.0'
        in metrics
    )
    assert 'topic="secret"' not in metrics
    assert stored(redis_broker, f"{prefix}secret") == []


async def test_a_broker_that_cannot_confirm_is_503_publish_failed(sidecar_factory: Any) -> None:
    """With the broker unreachable the app gets 503 and x-sidecar-error, never a 204."""
    config = events_config(f"redis://127.0.0.1:{free_port()}/0", "x:", publish_timeout="2s")
    async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
        async with httpx.AsyncClient() as client:
            r = await client.post(f"http://127.0.0.1:{s.http_port}/events/orders", content=b"x")
    assert r.status_code == 503
    assert r.headers["x-sidecar-error"] == "publish_failed"


async def test_an_invalid_event_is_400(redis_broker: RedisBroker, sidecar_factory: Any) -> None:
    """A structured body that is no JSON object is refused with the reason, not stored."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    async with sidecar_factory(
        events_config(redis_broker.url, prefix), plugins=[sidecar_pubsub]
    ) as s:
        async with httpx.AsyncClient() as client:
            r = await client.post(
                f"http://127.0.0.1:{s.http_port}/events/orders",
                content=b"[1]",
                headers={"content-type": "application/cloudevents+json"},
            )
    assert r.status_code == 400
    assert r.headers["x-sidecar-error"] == "invalid_event"
    assert stored(redis_broker, f"{prefix}orders") == []
