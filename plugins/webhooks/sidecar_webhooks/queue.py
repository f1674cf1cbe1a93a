"""What the delivery engine asks of a durable queue, whichever kind it is.

Two kinds implement it: :class:`.file_queue.FileQueue` (a directory, the default: no other
server) and :class:`.redis_queue.RedisQueue` (Redis Streams, shared by replicas). The engine, the
workers and the admin routes speak only to this interface, so they never branch on the kind.

A queue keeps each delivery (event × endpoint) and its event's body until the delivery is
delivered or dead, hands each pending delivery to the engine when it is due (once per replica
set under normal operation), and reports its per-endpoint counts as they change. It does not
send, sign, decide outcomes or compute the retry schedule: the workers do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from .store import Delivery, State

#: called with a delivery that is due now (the engine gives it to its endpoint's worker)
HandOut = Callable[[Delivery], None]
#: called with ``(endpoint, state, count)`` whenever a count the queue keeps changed
Counted = Callable[[str, str, int], None]


class QueueFull(Exception):
    """More deliveries are pending than ``max_pending`` allows: nothing was accepted."""


class QueueDown(Exception):
    """The queue's storage could not be reached or written: nothing was accepted or changed."""


class Added(NamedTuple):
    """What :meth:`Queue.add` did: the endpoints that will get the event, and whether its id was
    already held (then nothing was queued again and ``endpoints`` are those it was queued for)."""

    endpoints: list[str]
    repeat: bool


class Queue(Protocol):
    """The durable queue of one webhooks upstream (see the module docstring)."""

    #: where it keeps its data, for the admin view (never a password)
    where: str

    async def start(self, hand_out: HandOut, counted: Counted) -> None:
        """Read back or connect, then hand out due deliveries until :meth:`stop`."""

    async def stop(self) -> None:
        """Stop handing out; what was not finished stays queued (sent again later)."""

    async def add(self, msg_id: str, body: bytes, deliveries: Sequence[Delivery]) -> Added:
        """Keep ``body`` and those of ``deliveries`` whose endpoint is not disabled, durably,
        before returning. Raises QueueFull or QueueDown (nothing kept then)."""

    def is_disabled(self, endpoint: str) -> bool:
        """Whether a 410 disabled the endpoint (as last known: replicas may learn it late)."""

    async def set_disabled(self, endpoint: str, disabled: bool) -> None:
        """Disable (410) or re-enable an endpoint, durably. Raises QueueDown."""

    async def body(self, delivery: Delivery) -> bytes:
        """The event's body; LookupError when it is gone, QueueDown when unreachable."""

    async def reschedule(self, delivery: Delivery) -> None:
        """Keep the delivery's new state and hand it out again at ``delivery.next_at``."""

    async def delivered(self, delivery: Delivery) -> None:
        """Forget a delivered delivery (and its body, once no delivery needs it)."""

    async def dead(self, delivery: Delivery) -> None:
        """Keep the delivery as dead (``last_error`` says why); past ``max_dead`` the oldest
        dead ones are forgotten."""

    async def redeliver(self, key: str, endpoints: set[str]) -> Delivery | None:
        """A dead delivery to one of ``endpoints`` is pending again, due now, its attempts
        counted afresh; ``None`` when there is no such dead delivery. Raises QueueDown."""

    async def listing(self, state: State, limit: int) -> tuple[int, list[Delivery]]:
        """How many deliveries are in ``state``, and the ``limit`` oldest. Raises QueueDown."""

    async def counts(self) -> dict[tuple[str, str], int]:
        """``(endpoint, state)`` → deliveries, for every endpoint that has any. Raises
        QueueDown."""
