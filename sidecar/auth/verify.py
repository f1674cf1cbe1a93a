"""``verify_hmac``: accept only calls signed with a configured secret, fresh, and seen once.

For webhooks: an upstream or route with ``verify_hmac`` refuses, with 401 ``signature_invalid``
and a reason, every call that

1. lacks the signature or timestamp header (or, scheme ``standard-webhooks``, the
   ``webhook-id``), or has one that does not parse (``missing``, ``malformed``);
2. was signed at a time further than ``max_skew`` (5 min) from the sidecar's clock (``stale``):
   an old captured call cannot be sent again later;
3. does not carry the HMAC-SHA256 the scheme computes from the call with one of the configured
   secrets (``mismatch``): several secrets at once let a sender rotate; every offered signature
   is compared with every secret's, in constant time (``hmac.compare_digest``), without stopping
   at the first match;
4. carries what was already accepted within the window (``replay``): the signature (scheme
   ``sidecar``) or the ``webhook-id`` (``standard-webhooks``), remembered until its timestamp
   leaves the window, in this process or, with ``replay_backend``, in Redis so replicas agree
   (:mod:`.replays`; Redis unreachable: 503 ``replay_check_unavailable``, fail closed).

The two schemes are small strategies (:mod:`.signature_schemes`) around this one flow. The checks
run in that order, the cheap ones first: the body is read (bounded by ``max_body``, 413 past it)
only for a call whose headers passed, and a replay id is remembered only once it verified, so
forged calls cannot fill the store. For scheme ``sidecar`` the path signed is the path the call
is forwarded with (the route's prefix stripping or rewriting applied), which is the path the
sender called on the inbound listener and on explicit routes without ``prefix_rewrite``.

Order 320: right inside ``metrics`` (so refusals are counted and logged) and before the rate
limits and the concurrency limit, so an unsigned call takes no rate-limit token and no slot
from the signed ones. Refusals count ``sidecar_signatures_rejected_total{reason}``.
"""

from __future__ import annotations

__all__ = ["REASONS", "REPLAYS", "ReplayCache", "SharedReplays", "factory", "make_verify_hmac"]

import hmac
import json
import time
from collections.abc import Callable, Sequence

from ..api import AuthConfigProblem, RouteContext, SharedKey
from ..chain import Filter, Handler
from ..config.policies import VerifyHmacPolicy
from ..config.secrets import SecretValue
from ..errors import BodyTooLarge, SignatureInvalid
from ..exchange import Exchange, Response, read_body
from ..ratelimit.live import live_backends
from ..ratelimit.redis_backend import RedisBackend
from .replays import ReplayCache, SharedReplays
from .signature_schemes import Refusal, scheme_of

#: why a call was refused (``sidecar_signatures_rejected_total{reason}``).
REASONS = ("missing", "malformed", "stale", "mismatch", "replay")

#: One replay cache for all routes of an upstream (a replay on another route is a replay).
REPLAYS: SharedKey[ReplayCache] = SharedKey("verify_hmac")
#: The Redis replay store of an upstream (one key space per upstream and scheme).
SHARED_REPLAYS: SharedKey[SharedReplays] = SharedKey("verify_hmac_shared")


def factory(ctx: RouteContext) -> Filter | None:
    policy = ctx.upstream.verify_hmac
    if policy is None or not policy.enabled:
        return None
    check = policy.secret_check("secrets")
    secrets = [
        SecretValue(ref, f"verify_hmac.{where}", check=check) for where, ref in policy.all_secrets
    ]
    replay: ReplayCache | SharedReplays | None = None
    if policy.replay_backend is not None:
        replay = _shared_replays(ctx, policy, policy.replay_backend)
    elif policy.replay_cache:
        size = policy.replay_cache
        key = json.dumps(policy.model_dump(mode="json"), sort_keys=True)
        # one cache for all routes of the upstream (a replay on another route is a replay)
        replay = ctx.shared(REPLAYS, key, lambda: ReplayCache(size))
    family = ctx.metrics.signatures_rejected
    counters: dict[str, Callable[[], None]] = {
        r: family.labels(ctx.upstream_name, ctx.route, r).inc for r in REASONS
    }
    return make_verify_hmac(policy, secrets, replay, counters)


def _shared_replays(ctx: RouteContext, policy: VerifyHmacPolicy, name: str) -> SharedReplays:
    config = ctx.config.ratelimit_backends.get(name)
    if config is None:  # the config checks say so first, at the key's path
        raise AuthConfigProblem("verify_hmac.replay_backend", f"no backend named {name!r}")
    # the live backend itself is part of the key: a reload that changed it gets a new store
    backend = live_backends(ctx.resources).get(name, config).backend
    if not isinstance(backend, RedisBackend):
        raise AuthConfigProblem(
            "verify_hmac.replay_backend", f"the backend {name!r} is not of type redis"
        )
    space = f"{ctx.upstream_name}:{policy.scheme}"
    return ctx.shared(SHARED_REPLAYS, (backend, space), lambda: SharedReplays(backend, space))


def make_verify_hmac(
    policy: VerifyHmacPolicy,
    secrets: SecretValue | Sequence[SecretValue],
    replay: ReplayCache | SharedReplays | None,
    counters: dict[str, Callable[[], None]] | None = None,
    *,
    wall: Callable[[], float] = time.time,
) -> Filter:
    """The filter of one route; ``wall`` (seconds since the epoch) is for tests."""
    scheme = scheme_of(policy)
    present, expected, key_of = scheme.present, scheme.expected, scheme.key
    skew, limit = policy.max_skew, policy.max_body
    counted = counters or {}
    values = [secrets] if isinstance(secrets, SecretValue) else list(secrets)
    # (secret, its key) per secret: the key is derived once per value, again after a rotation
    keys: list[tuple[str, bytes]] = [("", b"")] * len(values)
    local = replay if isinstance(replay, ReplayCache) else None
    shared = replay if isinstance(replay, SharedReplays) else None

    def refuse(reason: str, detail: str) -> SignatureInvalid:
        count = counted.get(reason)
        if count is not None:
            count()
        return SignatureInvalid(detail, headers=(("www-authenticate", "HMAC-SHA256"),))

    def current_keys() -> list[bytes]:
        for i, secret in enumerate(values):
            value = secret.get()
            if keys[i][0] is not value:
                keys[i] = (value, key_of(value))
        return [k for _, k in keys]

    async def verify_hmac(exchange: Exchange, call_next: Handler) -> Response:
        call = present(exchange.headers)
        if isinstance(call, Refusal):
            raise refuse(call.reason, call.detail)
        now = wall()
        signed_at = call.signed_at
        if abs(now - signed_at) > skew:
            raise refuse("stale", scheme.stale)
        body = exchange.body
        if not isinstance(body, bytes):
            length = exchange.body_length
            if length is not None and length > limit:
                raise BodyTooLarge(f"a signed body is verified whole, up to {limit} bytes")
            body = await read_body(exchange, limit)
        elif len(body) > limit:
            raise BodyTooLarge(f"a signed body is verified whole, up to {limit} bytes")
        found = False
        for key in current_keys():
            want = expected(key, call, exchange, body)
            for got in call.offered:
                # every pair compared: the time taken does not tell which secret matched
                found |= hmac.compare_digest(got, want)
        if not found:
            raise refuse("mismatch", scheme.mismatch)
        # remembered only now that it verified: a forged call cannot use up a genuine id
        until = signed_at + skew
        if local is not None and local.seen_before(call.replay_id, now, until):
            raise refuse("replay", scheme.replayed)
        if shared is not None and not await shared.first_time(call.replay_id, until - now):
            raise refuse("replay", scheme.replayed)
        return await call_next(exchange)

    return verify_hmac
