"""The options of an upstream with ``adapter: pubsub`` (``upstreams.<u>.options``).

The upstream's ``url`` is the broker (``redis://host:6379/0``, ``amqp://host:5672/vhost``,
``mqtt://host:1883``, ``kafka://host:9092``); its scheme picks the backend unless
``backend.type`` names one. ``topics`` are the only topics the
app may publish to (and the only topic label values of the metrics); ``subscriptions`` are what
the sidecar delivers to the app. Validated by ``sidecar check`` and at start-up, each problem at
its key path. Not here: the backend's own keys (its ``options_model``, checked when the
upstream's handler is built), delivery itself.
"""

from __future__ import annotations

__all__ = [
    "BackendChoice",
    "PluginSettings",
    "PubSubOptions",
    "RetryPolicy",
    "SubscriptionConfig",
]

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidecar import Duration, Model, Size

#: a topic (stream, routing key) name: bounded, and safe as a metric label and in a URL path
TOPIC = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
#: a consumer group (queue suffix) name
GROUP = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class BackendChoice(BaseModel):
    """``options.backend``: ``type`` (default: from the url's scheme) and the backend's own
    keys, validated by that backend's ``options_model``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str | None = None

    def own_keys(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RetryPolicy(Model):
    """How often and how fast a delivery the app did not take is tried again."""

    #: deliveries in all (the first included) before the message goes to the dead-letter topic
    attempts: int = Field(default=5, ge=1, le=100)
    #: the wait after the first failure, doubled after each one up to ``max_backoff``
    backoff: Duration = Field(default=0.1, gt=0, le=60)
    max_backoff: Duration = Field(default=5.0, gt=0, le=600)


class SubscriptionConfig(Model):
    """One subscription: messages of ``topic`` read by consumer ``group``, POSTed to the app's
    ``path`` as CloudEvents in binary mode."""

    topic: str = Field(pattern=TOPIC)
    #: the consumer group: replicas of one app share it, each message goes to one of them
    group: str = Field(pattern=GROUP)
    #: the app's path the message is POSTed to (under ``plugins.pubsub.app``)
    path: str = Field(pattern=r"^/[!-~]*$", max_length=2000)
    #: messages delivered to the app at once
    concurrency: int = Field(default=1, ge=1, le=256)
    #: a CloudEvents attribute (``partitionkey``...): messages with the same value of it are
    #: delivered one at a time, in the order they were read; others go at once
    ordered_by: str | None = Field(default=None, pattern=r"^[a-z0-9]{1,40}$")
    #: bound on one delivery to the app; past it the delivery is retried
    timeout: Duration = Field(default=10.0, gt=0, le=600)
    retry: RetryPolicy = RetryPolicy()
    #: where a message goes when the app says DEADLETTER or the retries are used up (one of
    #: ``topics``); without one such a message is counted, logged and acknowledged
    dead_letter: str | None = Field(default=None, pattern=TOPIC)
    #: bound on the broker's confirmation of a dead-letter copy; past it the message is left
    #: with the broker, unacknowledged, as when the broker refuses the copy. Longer than an
    #: app's publish may wait: failing it holds the message back (on Kafka, its partition's
    #: commits), where an app just publishes again
    dead_letter_timeout: Duration = Field(default=30.0, gt=0, le=600)
    #: a message another consumer of the group took and left unacknowledged this long (it
    #: died) is claimed and delivered again
    claim_after: Duration = Field(default=30.0, gt=0, le=86400)


class PubSubOptions(Model):
    """``upstreams.<u>.options`` of an upstream with ``adapter: pubsub``."""

    backend: BackendChoice = BackendChoice()
    #: the topics the app may publish to; any other is refused 404 ``unknown_topic``
    topics: tuple[str, ...] = Field(min_length=1, max_length=1000)
    #: the CloudEvents ``source`` of events the app sent without one
    source: str = Field(default="sidecar", min_length=1, max_length=500)
    #: the CloudEvents ``type`` of events the app sent without one
    type: str = Field(default="sidecar.message", min_length=1, max_length=500)
    #: bound on the broker's confirmation of one publish
    publish_timeout: Duration = Field(default=5.0, gt=0, le=600)
    #: the largest event data the app may publish (413 past it)
    max_message_bytes: Size = Field(default=1 << 20, gt=0, le=64 << 20)
    subscriptions: tuple[SubscriptionConfig, ...] = ()

    @model_validator(mode="after")
    def _topics_known(self) -> PubSubOptions:
        for topic in self.topics:
            if not re.match(TOPIC, topic):
                raise ValueError(f"topic {topic[:200]!r} is not letters, digits, '.', '_', '-'")
        for i, sub in enumerate(self.subscriptions):
            named: tuple[tuple[str, str | None], ...] = (
                ("topic", sub.topic),
                ("dead_letter", sub.dead_letter),
            )
            for key, name in named:
                if name is not None and name not in self.topics:
                    raise ValueError(
                        f"subscriptions.{i}.{key}: topic {name!r} is not one of topics"
                    )
        return self


class PluginSettings(Model):
    """``plugins.pubsub``: where the app takes deliveries."""

    #: the app's base URL, which every subscription's ``path`` is under (loopback: the app
    #: runs beside the sidecar)
    app: str = Field(default="http://127.0.0.1:8080", pattern=r"^https?://[^/@\s]+$")
    #: this sidecar's consumer name in each group (default: host name and process id)
    consumer: str | None = Field(default=None, pattern=GROUP)
