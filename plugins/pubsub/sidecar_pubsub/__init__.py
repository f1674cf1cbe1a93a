"""sidecar-pubsub: publish to message brokers over HTTP and get messages delivered, as
CloudEvents (``adapter: pubsub``).

The app publishes with ``POST /<upstream>/<topic>`` and is answered 204 once the broker
confirmed; configured subscriptions deliver each message to the app over HTTP, with retries and
a dead-letter topic, acknowledging it to the broker only after the app's answer. Backends:
Redis Streams, RabbitMQ, MQTT 5 and Kafka; other distributions add more through
:data:`backend_hookimpl` (``pubsub_register_backends``). Imports only ``sidecar``, the
public plugin API. Docs: ``plugins/pubsub/README.md``.
"""

from __future__ import annotations

from sidecar import AdapterRegistry, ConfigRegistry, LifespanRegistry, hookimpl

from .adapter import PubSubAdapter
from .backend import Backend, BrokerUnavailable, Consumer, Delivery
from .backends_host import BackendRegistry
from .backends_host import hookimpl as backend_hookimpl
from .config import PluginSettings
from .lifespan import run_subscriptions

__all__ = [
    "Backend",
    "BackendRegistry",
    "BrokerUnavailable",
    "Consumer",
    "Delivery",
    "PluginSettings",
    "PubSubAdapter",
    "backend_hookimpl",
]

#: The plugin API major version this plugin is written for.
SIDECAR_API = 1


@hookimpl
def sidecar_declare_config(registry: ConfigRegistry) -> None:
    registry.add("pubsub", PluginSettings)


@hookimpl
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add("pubsub", PubSubAdapter)


@hookimpl
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    registry.add("pubsub_subscriptions", run_subscriptions)
