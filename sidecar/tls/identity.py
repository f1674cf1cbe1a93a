"""``identity_header``: tells the app who called, in a header only the sidecar can set.

On the routes of a front whose callers are authenticated peers
(:attr:`~sidecar.api.FrontTraits.peer_identity`: the inbound mTLS port), every value of
``inbound.identity_header`` (``x-forwarded-client-cert`` by default) that came with the call is
removed (a peer could claim any identity in it), then one value is set in the format Envoy and
Istio use (XFCC)::

    x-forwarded-client-cert: By=spiffe://cluster.local/ns/pay/sa/payments;URI=spiffe://cluster.local/ns/shop/sa/web

``By`` is the sidecar's own SPIFFE ID (from the certificate it serves now, so a rotation that
changes it is followed), ``URI`` the peer's, verified during the handshake. A peer without one
never gets this far (:mod:`.peer` refuses it); should a plugin filter let it through, the app gets
no header at all rather than an empty identity.

Order 890: inside every other filter that may touch headers (plugin filters, retries, ``auth``),
so none of them can replace or add to what the listener verified; ``request_headers`` (900) comes
after it, and inbound routes have none. Routes of other fronts (egress) get no filter (the
factory returns ``None``).
"""

from __future__ import annotations

__all__ = ["RESOURCE", "factory", "make_identity_header"]

from collections.abc import Callable

from ..api import RouteContext
from ..chain import Filter, Handler
from ..exchange import Exchange, Response
from .material import TlsMaterial

#: ``sidecar.resources`` key of the inbound listener's :class:`TlsMaterial` (our own ID).
RESOURCE = "tls.inbound"


def factory(ctx: RouteContext) -> Filter | None:
    if not ctx.front.peer_identity or ctx.config.inbound is None:
        return None
    material = ctx.resources.get(RESOURCE)

    def own_id() -> str | None:
        info = material.info if isinstance(material, TlsMaterial) else None
        return info.spiffe_id if info is not None else None

    return make_identity_header(ctx.config.inbound.identity_header, own_id)


def make_identity_header(name: str, own_id: Callable[[], str | None]) -> Filter:
    """The filter; ``own_id()`` is the sidecar's current SPIFFE ID (read per call: rotation)."""

    async def identity_header(exchange: Exchange, call_next: Handler) -> Response:
        headers = exchange.headers
        if name in headers:
            headers.remove(name)  # the app must never see an identity the sidecar did not verify
        peer = exchange.peer_identity
        if peer is not None:
            by = own_id()
            headers.add(name, f"By={by};URI={peer}" if by else f"URI={peer}")
        return await call_next(exchange)

    return identity_header
