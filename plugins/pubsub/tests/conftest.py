"""Fixtures of the pubsub tests: the brokers, each started once per session when a test first
needs it (a broker that cannot start fails that test), and an app that records deliveries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pubsub_brokers import MosquittoBroker, RabbitMQBroker, RedisBroker, TansuBroker


@pytest.fixture(scope="session")
def redis_broker() -> Iterator[RedisBroker]:
    """The session's redis-server (tests keep apart by key prefix)."""
    broker = RedisBroker().start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def rabbitmq_broker() -> Iterator[RabbitMQBroker]:
    """The session's rabbitmq-server (tests keep apart by exchange)."""
    broker = RabbitMQBroker().start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def mosquitto_broker() -> Iterator[MosquittoBroker]:
    """The session's mosquitto (tests keep apart by topic prefix)."""
    broker = MosquittoBroker().start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[TansuBroker]:
    """The session's Kafka-compatible broker (tests keep apart by topic name)."""
    broker = TansuBroker().start()
    try:
        yield broker
    finally:
        broker.close()
