"""``peer_allow``: on the inbound front, only the peers on the route's allow-list get through.

It applies to the routes of a front whose callers are authenticated peers
(:attr:`~sidecar.api.FrontTraits.peer_identity`: the inbound mTLS port). That front verified the
peer's certificate during the handshake and put its SPIFFE ID in ``exchange.peer_identity``;
this filter compares it with the route's ``allow`` (or ``inbound.allow`` for the default
route), exact IDs and ``*``-suffix patterns, and answers any other peer (a peer whose
certificate carries no SPIFFE ID included) with 403 ``x-sidecar-error: peer_not_allowed``.
Each refusal is counted (``sidecar_errors_total``) and written to the access log; the sidecar's
own log gets a warning naming the peer, the route and the client address, at most once a minute
per peer and route (with the number of refusals since the last line), so a peer retrying in a
loop cannot flood the log.

Order 310: right inside ``metrics`` (so the refusal is counted and logged), before everything that
costs or decides (``verify_hmac``, rate limits, the concurrency limit), so a peer that may not
call takes no token and no slot. Routes of other fronts (egress) get no filter at all (the
factory returns ``None``).
"""

from __future__ import annotations

__all__ = ["RefusalLog", "factory", "make_peer_allow"]

import logging
import time
from collections.abc import Callable

from ..api import RouteContext
from ..chain import Filter, Handler
from ..config.inbound_routes import allow_list
from ..errors import PeerNotAllowed
from ..exchange import Exchange, Response
from .spiffe import AllowList

log = logging.getLogger("sidecar.tls")

#: One log line per (peer, route) per this many seconds.
LOG_EVERY = 60.0
#: Peers remembered for that; past it the memory starts over (a line more, never unbounded).
LOG_KEYS = 1024


class RefusalLog:
    """Warnings about refused peers, at most one per peer per ``every`` seconds."""

    def __init__(
        self,
        route: str,
        every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
        listener: str = "inbound",
    ) -> None:
        self.route = route
        self.listener = listener
        self.every = every
        self.clock = clock
        #: peer → (time of its last line, refusals not logged since)
        self._last: dict[str | None, tuple[float, int]] = {}

    def refused(self, peer: str | None, client: str) -> None:
        now = self.clock()
        last = self._last.get(peer)
        if last is not None and now - last[0] < self.every:
            self._last[peer] = (last[0], last[1] + 1)
            return
        if len(self._last) >= LOG_KEYS:
            self._last.clear()
        self._last[peer] = (now, 0)
        log.warning(
            "peer not allowed",
            extra={
                "fields": {
                    "listener": self.listener,
                    "route": self.route,
                    "peer": peer,
                    "client": client,
                    "reason": "no SPIFFE ID in its certificate"
                    if peer is None
                    else "not on the route's allow-list",
                    "refused_since_last_line": last[1] if last is not None else 0,
                }
            },
        )


def factory(ctx: RouteContext) -> Filter | None:
    if not ctx.front.peer_identity:
        return None
    # a route the inbound section does not know allows nobody (fail closed)
    allow = allow_list(ctx.config, ctx.route) or ()
    refusals = RefusalLog(ctx.route, listener=ctx.listener)
    return make_peer_allow(AllowList(allow), refusals, ctx.route)


def make_peer_allow(allowed: AllowList, refusals: RefusalLog, route: str) -> Filter:
    """The filter of one inbound route."""

    async def peer_allow(exchange: Exchange, call_next: Handler) -> Response:
        peer = exchange.peer_identity
        if allowed.allows(peer):
            return await call_next(exchange)
        refusals.refused(peer, exchange.client)
        if peer is None:
            raise PeerNotAllowed("the peer's certificate carries no SPIFFE ID")
        raise PeerNotAllowed(f"{peer} may not call route {route!r}")

    return peer_allow
