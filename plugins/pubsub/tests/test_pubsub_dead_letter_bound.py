"""A dead-letter copy the broker never confirms is given up within ``publish_timeout`` (no sockets).

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
        topic="orders", group="billing", path="/events/orders", dead_letter="orders.dlq"
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
        0.05,
    )


async def test_a_copy_the_broker_never_confirms_is_given_up_after_publish_timeout(
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
    assert sub.drain_bound >= sub.config.timeout + sub.publish_timeout


def test_a_reload_that_changes_publish_timeout_restarts_the_subscription() -> None:
    """A running subscription keeps the bound it started with: a reload that changes it stops
    and starts the subscription again (a change of `topics` alone leaves it running)."""
    from sidecar_pubsub.config import PubSubOptions
    from sidecar_pubsub.running import _Wanted

    def wanted(**options: Any) -> _Wanted:
        opts = PubSubOptions.model_validate({"topics": ["orders", "orders.dlq"], **options})
        sub = SubscriptionConfig(topic="orders", group="billing", path="/in")
        return _Wanted(
            "bus", "redis://r", opts.backend, sub, "http://app", "c1", opts.publish_timeout, opts
        )

    assert wanted(publish_timeout="5s") != wanted(publish_timeout="1s")
    assert wanted(publish_timeout="5s") == wanted(publish_timeout="5s", source="other")
