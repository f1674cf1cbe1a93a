"""``verify_hmac``: accept only calls signed with the shared secret, fresh, and seen once.

For webhooks: an upstream or route with ``verify_hmac`` refuses, with 401 ``signature_invalid``
and a reason, every call that

1. lacks the signature or timestamp header, or has one that does not parse (``missing``,
   ``malformed``);
2. was signed at a time further than ``max_skew`` (5 min) from the sidecar's clock (``stale``):
   an old captured call cannot be sent again later;
3. does not carry the HMAC-SHA256 of the string-to-sign of :mod:`.hmac` (``mismatch``), compared
   in constant time (``hmac.compare_digest``);
4. carries a signature already accepted within the window (``replay``): accepted signatures are
   remembered until their timestamp leaves the window, in a bounded cache (``replay_cache``
   entries, the oldest forgotten first, so size it above the calls one window brings).

The checks run in that order, the cheap ones first: the body is read (bounded by ``max_body``,
413 past it) only for a call whose headers passed, and a signature is remembered only once it
verified, so forged calls cannot fill the cache. The path signed is the path the call is
forwarded with (the route's prefix stripping or rewriting applied), which is the path the sender
called on the inbound listener and on explicit routes without ``prefix_rewrite``.

Order 320: right inside ``metrics`` (so refusals are counted and logged) and before the rate
limits and the concurrency limit, so an unsigned call takes no rate-limit token and no slot
from the signed ones. Refusals count ``sidecar_signatures_rejected_total{reason}``.
"""

from __future__ import annotations

__all__ = ["REASONS", "ReplayCache", "factory", "make_verify_hmac"]

import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..api import RouteContext, SharedKey
from ..chain import Filter, Handler
from ..config.policies import VerifyHmacPolicy
from ..config.secrets import SecretValue
from ..errors import BodyTooLarge, SignatureInvalid
from ..exchange import Exchange, Response, read_body
from .hmac import sign

#: why a call was refused (``sidecar_signatures_rejected_total{reason}``).
REASONS = ("missing", "malformed", "stale", "mismatch", "replay")


class ReplayCache:
    """Signatures accepted recently, each until its timestamp leaves the window (LRU-bounded)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen_before(self, signature: str, now: float, until: float) -> bool:
        """``True`` if ``signature`` was accepted and is still in its window; else remember it
        (until wall time ``until``) and return ``False``."""
        seen = self._seen
        # entries arrive roughly in timestamp order: forget those whose window has passed
        while seen:
            first = next(iter(seen.values()))
            if first >= now:
                break
            seen.popitem(last=False)
        expires = seen.get(signature)
        if expires is not None and expires >= now:
            return True
        seen[signature] = until
        if len(seen) > self.size:
            seen.popitem(last=False)
        return False

    def describe(self) -> dict[str, Any]:
        return {"replay_cache": {"entries": len(self._seen), "max": self.size}}


#: One replay cache for all routes of an upstream (a replay on another route is a replay).
REPLAYS: SharedKey[ReplayCache] = SharedKey("verify_hmac")


def factory(ctx: RouteContext) -> Filter | None:
    policy = ctx.upstream.verify_hmac
    if policy is None or not policy.enabled:
        return None
    secret = SecretValue(policy.secret, "verify_hmac.secret")
    replay = None
    if policy.replay_cache:
        size = policy.replay_cache
        key = json.dumps(policy.model_dump(mode="json"), sort_keys=True)
        # one cache for all routes of the upstream (a replay on another route is a replay)
        replay = ctx.shared(REPLAYS, key, lambda: ReplayCache(size))
    family = ctx.metrics.signatures_rejected
    counters: dict[str, Callable[[], None]] = {
        r: family.labels(ctx.upstream_name, ctx.route, r).inc for r in REASONS
    }
    return make_verify_hmac(policy, secret, replay, counters)


def make_verify_hmac(
    policy: VerifyHmacPolicy,
    secret: SecretValue,
    replay: ReplayCache | None,
    counters: dict[str, Callable[[], None]] | None = None,
    *,
    wall: Callable[[], float] = time.time,
) -> Filter:
    """The filter of one route; ``wall`` (seconds since the epoch) is for tests."""
    header, ts_header, prefix = policy.header, policy.timestamp_header, policy.prefix
    skew, limit = policy.max_skew, policy.max_body
    counted = counters or {}
    key: list[tuple[str, bytes]] = [("", b"")]  # (secret, its bytes): encoded once per value

    def refuse(reason: str, detail: str) -> SignatureInvalid:
        count = counted.get(reason)
        if count is not None:
            count()
        err = SignatureInvalid(detail, headers=(("www-authenticate", "HMAC-SHA256"),))
        return err

    async def verify_hmac(exchange: Exchange, call_next: Handler) -> Response:
        headers = exchange.headers
        provided = headers.get(header)
        stamp = headers.get(ts_header)
        if provided is None or stamp is None:
            raise refuse("missing", f"the call needs {header} and {ts_header} headers")
        stamp = stamp.strip()
        if not provided.startswith(prefix) or not stamp.isdigit() or len(stamp) > 12:
            raise refuse(
                "malformed", f"{header} is {prefix}<hex> and {ts_header} a Unix time in seconds"
            )
        now = wall()
        signed_at = int(stamp)
        if abs(now - signed_at) > skew:
            raise refuse("stale", f"{ts_header} is outside the accepted window of ±{skew:g}s")
        body = exchange.body
        if not isinstance(body, bytes):
            length = exchange.body_length
            if length is not None and length > limit:
                raise BodyTooLarge(f"a signed body is verified whole, up to {limit} bytes")
            body = await read_body(exchange, limit)
        elif len(body) > limit:
            raise BodyTooLarge(f"a signed body is verified whole, up to {limit} bytes")
        value = secret.get()
        if key[0][0] is not value:
            key[0] = (value, value.encode())
        query = exchange.query
        target = f"{exchange.path}?{query}" if query else exchange.path
        expected = sign(key[0][1], stamp, exchange.method, target, body)
        got = provided[len(prefix) :].strip().lower()
        # bytes on both sides: compare_digest refuses non-ASCII str, and header values are latin-1
        if not hmac.compare_digest(got.encode("latin-1", "replace"), expected.encode()):
            raise refuse("mismatch", f"{header} does not match the call")
        if replay is not None and replay.seen_before(got, now, signed_at + skew):
            raise refuse("replay", "this signature was already accepted (a replayed call)")
        return await call_next(exchange)

    return verify_hmac
