"""The inbound filters, driven with `make_exchange` and a stub `call_next`: the peer allow-list
(`peer_allow`) and the identity header the app gets (`identity_header`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.api import FrontTraits, RouteContext
from sidecar.errors import PeerNotAllowed
from sidecar.exchange import Exchange
from sidecar.testing import make_exchange, make_route_context, on_front, responder
from sidecar.tls import identity, peer
from sidecar.tls.material import TlsMaterial
from sidecar.tls.peer import RefusalLog, make_peer_allow
from sidecar.tls.spiffe import AllowList

WEB = "spiffe://cluster.local/ns/shop/sa/web"
OPS = "spiffe://cluster.local/ns/ops/sa/console"
PAYMENTS = "spiffe://cluster.local/ns/pay/sa/payments"

INBOUND = {
    "inbound": {
        "address": "127.0.0.1:0",
        "app": "127.0.0.1:8080",
        "tls": {"cert": "/x/tls.crt", "key": "/x/tls.key", "ca": "/x/ca.crt"},
        "allow": ["spiffe://cluster.local/ns/shop/sa/*"],
        "routes": [{"name": "admin", "match": {"path_prefix": "/admin"}, "allow": [OPS]}],
    }
}


def inbound_ctx(route: str, **more: Any) -> RouteContext:
    ctx = make_route_context(config=INBOUND)
    return on_front(ctx, "inbound", route=route, **more)


def call(peer_id: str | None, headers: Any = None) -> Exchange:
    ex = make_exchange(headers=headers)
    ex.peer_identity = peer_id
    return ex


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("sidecar.tls")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_egress_routes_get_neither_filter() -> None:
    """The app's own calls out pay nothing for the inbound filters."""
    ctx = make_route_context(config=INBOUND)
    assert peer.factory(ctx) is None and identity.factory(ctx) is None


async def test_a_front_of_authenticated_peers_gets_both_filters_whatever_its_name(
    records: Records,
) -> None:
    """The peer filters follow the front's traits: a front whose callers are verified peers is
    guarded, and its refusals are logged under its own name."""
    mesh = FrontTraits("mesh", peer_identity=True)
    ctx = on_front(make_route_context(config=INBOUND), mesh, route="admin")
    guard = peer.factory(ctx)
    assert guard is not None and identity.factory(ctx) is not None
    with pytest.raises(PeerNotAllowed):
        await guard(call(WEB), responder())
    (line,) = [r.fields for r in records.records]  # type: ignore[attr-defined]
    assert line["listener"] == "mesh" and line["route"] == "admin"


async def test_each_inbound_route_lets_through_the_peers_of_its_own_allow_list() -> None:
    """The default route takes `inbound.allow`, a named route its own `allow`."""
    default = peer.factory(inbound_ctx("inbound"))
    admin = peer.factory(inbound_ctx("admin"))
    assert default is not None and admin is not None
    seen: list[Exchange] = []
    ok = responder(200, seen=seen)
    assert (await default(call(WEB), ok)).status == 200
    assert (await admin(call(OPS), ok)).status == 200
    with pytest.raises(PeerNotAllowed) as refused:
        await admin(call(WEB), ok)
    assert refused.value.status == 403 and refused.value.code == "peer_not_allowed"
    assert WEB in refused.value.detail and "'admin'" in refused.value.detail
    with pytest.raises(PeerNotAllowed):
        await default(call(OPS), ok)
    assert len(seen) == 2


async def test_a_route_the_inbound_section_does_not_know_allows_nobody() -> None:
    """Fail closed: a chain composed for an unknown inbound route refuses every peer."""
    f = peer.factory(inbound_ctx("no-such-route"))
    assert f is not None
    with pytest.raises(PeerNotAllowed):
        await f(call(WEB), responder())


async def test_a_peer_without_a_spiffe_id_is_refused_with_that_reason(records: Records) -> None:
    """A certificate from the CA without a URI SAN names nobody: 403, and the log says why."""
    f = make_peer_allow(AllowList([WEB]), RefusalLog("inbound"), "inbound")
    with pytest.raises(PeerNotAllowed, match="carries no SPIFFE ID"):
        await f(call(None), responder())
    (line,) = [r.fields for r in records.records]  # type: ignore[attr-defined]
    assert line["peer"] is None and line["reason"] == "no SPIFFE ID in its certificate"


async def test_refusals_are_logged_once_a_minute_per_peer_with_the_count_since(
    records: Records,
) -> None:
    """A peer retrying in a loop cannot flood the log; the next line says how many were refused."""
    clock = [0.0]
    f = make_peer_allow(AllowList([WEB]), RefusalLog("admin", clock=lambda: clock[0]), "admin")
    for t in (0.0, 1.0, 2.0, 59.0, 61.0):
        clock[0] = t
        for who in (OPS, PAYMENTS):
            with pytest.raises(PeerNotAllowed):
                await f(call(who, {}), responder())
    lines = [r.fields for r in records.records]  # type: ignore[attr-defined]
    assert [(x["peer"], x["refused_since_last_line"]) for x in lines] == [
        (OPS, 0),
        (PAYMENTS, 0),
        (OPS, 3),
        (PAYMENTS, 3),
    ]
    assert all(x["route"] == "admin" and x["client"] == "127.0.0.1:40000" for x in lines)


async def test_the_app_gets_the_verified_identity_and_never_a_forged_one() -> None:
    """Every identity header value from the peer goes; one value, By us and URI the peer, comes."""
    f = identity.make_identity_header("x-forwarded-client-cert", lambda: PAYMENTS)
    seen: list[Exchange] = []
    forged = [
        ("x-forwarded-client-cert", f"URI={OPS}"),
        ("x-other", "kept"),
        ("x-forwarded-client-cert", "By=x;URI=spiffe://cluster.local/ns/kube-system/sa/root"),
    ]
    await f(call(WEB, forged), responder(seen=seen))
    (ex,) = seen
    assert ex.headers.get_all("x-forwarded-client-cert") == [f"By={PAYMENTS};URI={WEB}"]
    assert ex.headers.get("x-other") == "kept"


async def test_without_our_own_id_the_header_carries_the_peer_only_and_without_a_peer_nothing() -> (
    None
):
    """A served certificate without a SPIFFE ID gives `URI=` alone; no verified peer, no header."""
    f = identity.make_identity_header("x-peer", lambda: None)
    seen: list[Exchange] = []
    await f(call(WEB, [("x-peer", "forged")]), responder(seen=seen))
    await f(call(None, [("x-peer", "forged")]), responder(seen=seen))
    assert [ex.headers.get_all("x-peer") for ex in seen] == [[f"URI={WEB}"], []]


async def test_the_identity_header_reads_our_id_from_the_live_certificate() -> None:
    """By= follows the certificate the listener serves now (a rotation may change it)."""
    material = TlsMaterial.__new__(TlsMaterial)
    material.info = type("Info", (), {"spiffe_id": PAYMENTS})()  # type: ignore[assignment]
    f = identity.factory(inbound_ctx("inbound", resources={identity.RESOURCE: material}))
    assert f is not None
    seen: list[Exchange] = []
    await f(call(WEB), responder(seen=seen))
    material.info = type("Info", (), {"spiffe_id": OPS})()  # type: ignore[assignment]
    await f(call(WEB), responder(seen=seen))
    assert [ex.headers.get("x-forwarded-client-cert") for ex in seen] == [
        f"By={PAYMENTS};URI={WEB}",
        f"By={OPS};URI={WEB}",
    ]
