"""The backends this plugin ships, registered through the plugin's own backend hook."""

from __future__ import annotations

from ..backends_host import BackendRegistry, hookimpl
from .kafka import KafkaBackend
from .mqtt import MQTTBackend
from .rabbitmq import RabbitMQBackend
from .redis_streams import RedisStreamsBackend


@hookimpl
def pubsub_register_backends(registry: BackendRegistry) -> None:
    registry.add("redis", RedisStreamsBackend)
    registry.add("rabbitmq", RabbitMQBackend)
    registry.add("mqtt", MQTTBackend)
    registry.add("kafka", KafkaBackend)
