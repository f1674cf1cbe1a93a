"""What a broker backend is: publish with confirmation, and consume in a group with acks.

A backend is one connection (or pool) to one broker, built per upstream from its ``url`` and
``options.backend``. :meth:`Backend.publish` returns only once the broker confirmed the event
(``XADD``'s reply, a publisher confirm, a PUBACK, ``acks=all``) and raises
:class:`BrokerUnavailable` otherwise; :meth:`Backend.consumer` reads a topic as one member of a
consumer group, and a :class:`Delivery` stays unacknowledged until :meth:`Delivery.ack`. Which
backends exist is :mod:`.backends_host`'s business; the delivery loop is :mod:`.subscriber`'s.
"""

from __future__ import annotations

__all__ = ["Backend", "BrokerUnavailable", "Consumer", "Delivery"]

import abc
from typing import Any, ClassVar

from pydantic import BaseModel

from .envelope import CloudEvent


class BrokerUnavailable(Exception):
    """The broker did not confirm (refused, unreachable, timed out); the message says why in
    words safe to show the app (never a URL with a secret, never the data)."""


class Delivery(abc.ABC):
    """One message read from the broker, not yet acknowledged."""

    #: the event, or ``None`` when what the broker holds is no CloudEvent (it is dead-lettered)
    event: CloudEvent | None
    #: the broker's bytes, kept for a dead-letter copy of an undecodable message
    raw: bytes
    #: the broker's own id of the message (stream entry id, delivery tag), for logs
    broker_id: str

    @abc.abstractmethod
    async def ack(self) -> None:
        """Tell the broker the message is done with; it is not delivered again."""


class Consumer(abc.ABC):
    """One member of a consumer group reading one topic."""

    @abc.abstractmethod
    async def receive(self, max_count: int, wait: float) -> list[Delivery]:
        """Up to ``max_count`` messages, waiting at most ``wait`` seconds for the first; a
        consumer also takes over messages a dead member of its group left unacknowledged."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop reading; unacknowledged messages stay with the broker."""


class Backend(abc.ABC):
    """A connection to one broker, for one upstream."""

    #: validates the backend's own keys of ``options.backend`` (beside ``type``)
    options_model: ClassVar[type[BaseModel]]
    #: the upstream url schemes this backend is picked for when ``backend.type`` is not given
    url_schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, url: str, options: BaseModel) -> None:
        self.url = url
        self.options = options

    @abc.abstractmethod
    async def publish(self, topic: str, event: CloudEvent) -> None:
        """Store ``event`` on ``topic``; return once the broker confirmed it, or raise
        :class:`BrokerUnavailable`. The caller bounds the wait."""

    @abc.abstractmethod
    async def consumer(self, topic: str, group: str, name: str, claim_after: float) -> Consumer:
        """Join ``group`` on ``topic`` as ``name`` (creating the group when it is new)."""

    def describe(self) -> dict[str, Any]:
        """State for ``/upstreams``; never a secret."""
        return {}

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close every connection."""
