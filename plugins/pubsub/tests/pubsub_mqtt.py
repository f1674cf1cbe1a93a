"""What the MQTT tests share: the config of an upstream on a test's own topic, and a plain
MQTT 5 subscriber that records what it is sent."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiomqtt
from pubsub_brokers import MosquittoBroker


def mqtt_config(
    broker: MosquittoBroker, topic: str, app_url: str | None = None, **subscription: Any
) -> dict[str, Any]:
    """One mqtt upstream ``events`` with topics ``<topic>``/``<topic>.dlq``; with ``app_url``,
    a subscription of ``<topic>`` by group ``shop`` delivered to ``<app>/in``, fast retries."""
    options: dict[str, Any] = {"topics": [topic, f"{topic}.dlq"]}
    config: dict[str, Any] = {
        "upstreams": {"events": {"adapter": "pubsub", "url": broker.url, "options": options}}
    }
    if app_url is not None:
        options["subscriptions"] = [
            {
                "topic": topic,
                "group": "shop",
                "path": "/in",
                "dead_letter": f"{topic}.dlq",
                "retry": {"attempts": 2, "backoff": "10ms", "max_backoff": "20ms"},
                **subscription,
            }
        ]
        config["plugins"] = {"pubsub": {"app": app_url, "consumer": "sidecar-1"}}
    return config


def a_topic() -> str:
    return f"t{uuid.uuid4().hex[:8]}.orders"


class Listener:
    """A plain MQTT 5 subscriber, as another service would be."""

    def __init__(self, broker: MosquittoBroker, topic: str) -> None:
        self.client = aiomqtt.Client(
            "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5, timeout=10
        )
        self.topic = topic
        self.got: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Listener:
        await self.client.__aenter__()
        await self.client.subscribe(self.topic, qos=1)
        self._task = asyncio.create_task(self._listen())
        return self

    async def _listen(self) -> None:
        async for message in self.client.messages:
            assert isinstance(message.payload, bytes)
            self.got.append(json.loads(message.payload))

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.__aexit__(None, None, None)
