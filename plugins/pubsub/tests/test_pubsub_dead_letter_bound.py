"""A dead-letter copy the broker never confirms is given up after ``dead_letter_timeout``.

The message is then left with the broker (not acknowledged: it comes again), and the delivery slot
it held is free, as when the broker refuses the copy outright.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sidecar_pubsub.config import SubscriptionConfig
from sidecar_pubsub.envelope import CloudEvent
from sidecar_pubsub.metrics import PubSubMetrics
from sidecar_pubsub.subscriber import Subscription
from sidecar_pubsub.tracing import LiveTracer


class _Broker:
    """A backend whose publish confirms, or never answers (``hang``)."""

    def __init__(self, hang: bool) -> None:
        self.hang = hang
        self.published: list[tuple[str, CloudEvent]] = []

    async def publish(self, topic: str, event: CloudEvent) -> None:
        if self.hang:
            await asyncio.Event().wait()
        self.published.append((topic, event))


def _subscription(broker: _Broker) -> Subscription:
    config = SubscriptionConfig(
        topic="orders",
        group="billing",
        path="/events/orders",
        dead_letter="orders.dlq",
        dead_letter_timeout=0.05,
    )
    metrics = PubSubMetrics.of(CollectorRegistry())
    session: Any = None  # no delivery to an app here
    backend: Any = broker
    return Subscription(
        "bus",
        config,
        backend,
        "http://127.0.0.1:1",
        "c1",
        session,
        metrics,
        LiveTracer(),
        "redis",
    )


async def test_a_copy_the_broker_never_confirms_is_given_up_after_dead_letter_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sub = _subscription(_Broker(hang=True))
    event = CloudEvent({"id": "e1", "type": "t", "source": "s", "specversion": "1.0"}, b"x")
    with caplog.at_level(logging.WARNING, "sidecar.plugin.pubsub"):
        settled = await asyncio.wait_for(sub.dead_letter(event, "app", "the app answered 400"), 2)
    assert settled is False  # not acknowledged: the broker gives it out again
    assert "did not confirm within 0.05s" in caplog.text and "left with the broker" in caplog.text


async def test_a_confirmed_copy_settles_the_message() -> None:
    broker = _Broker(hang=False)
    sub = _subscription(broker)
    event = CloudEvent({"id": "e2", "type": "t", "source": "s", "specversion": "1.0"}, b"x")
    assert await sub.dead_letter(event, "app", "the app answered 400", 1) is True
    [(topic, copy)] = broker.published
    assert topic == "orders.dlq" and copy.attributes["deadletterreason"] == "the app answered 400"


def test_a_stopping_subscription_waits_for_a_dead_letter_publish_too() -> None:
    """Its drain bound counts the dead-letter publish's bound."""
    sub = _subscription(_Broker(hang=False))
    assert sub.drain_bound >= sub.config.timeout + sub.config.dead_letter_timeout
