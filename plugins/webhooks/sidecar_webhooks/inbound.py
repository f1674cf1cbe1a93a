"""The ``verify_webhook`` filter: refuses calls to an upstream unless they carry a valid
Standard Webhooks signature.

Configured per upstream under ``plugins.webhooks.verify`` (the app's own upstream, for webhooks
that arrive for it). A call passes when ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature`` are present, the timestamp is within ``tolerance`` of now, some ``v1``
signature matches some configured secret (several: rotation), and the id was not seen in a
call that passed within the tolerance window. Otherwise it gets a 401 whose
``x-sidecar-error`` says which check failed. The seen ids are kept in this process only
(bounded; the oldest forgotten first), so replicas do not share them.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from sidecar import (
    AuthConfigProblem,
    Exchange,
    Filter,
    Handler,
    Response,
    RouteContext,
    SecretValue,
    SharedKey,
    SidecarError,
    read_body,
)

from .config import VerifyPolicy, WebhooksConfig, secret_problem
from .signing import matches, secret_key


class Unsigned(SidecarError):
    status, grpc_code, code = 401, 16, "webhook_unsigned"  # 16: UNAUTHENTICATED


class Stale(SidecarError):
    status, grpc_code, code = 401, 16, "webhook_stale"


class BadSignature(SidecarError):
    status, grpc_code, code = 401, 16, "webhook_bad_signature"


class Replayed(SidecarError):
    status, grpc_code, code = 401, 16, "webhook_replayed"


class SeenIds:
    """Webhook ids that passed, each until its timestamp leaves the tolerance window."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._until: OrderedDict[str, float] = OrderedDict()

    def seen(self, msg_id: str, now: float) -> bool:
        until = self._until.get(msg_id)
        return until is not None and until >= now

    def remember(self, msg_id: str, until: float, now: float) -> None:
        if self.capacity == 0:
            return
        # drop expired ids from the old end first; past capacity, the oldest goes anyway
        while self._until and (
            len(self._until) >= self.capacity or next(iter(self._until.values())) < now
        ):
            self._until.popitem(last=False)
        self._until[msg_id] = until
        self._until.move_to_end(msg_id)


SEEN_IDS: SharedKey[SeenIds] = SharedKey("webhooks_seen_ids")


def make_verify_filter(ctx: RouteContext) -> Filter | None:
    """The filter of one route, or ``None`` when its upstream is not configured for it."""
    policy = ctx.plugin_config("webhooks", WebhooksConfig).verify.get(ctx.upstream_name)
    if policy is None or ctx.front.whole_messages:
        return None
    secrets = []
    for i, ref in enumerate(policy.secrets):
        key_path = f"plugins.webhooks.verify.{ctx.upstream_name}.secrets.{i}"
        try:
            secrets.append(SecretValue(ref, key_path, check=secret_problem))
        except AuthConfigProblem as e:
            raise ValueError(f"{key_path}: {e}") from None
    seen_ids = ctx.shared(SEEN_IDS, policy.replay_cache, lambda: SeenIds(policy.replay_cache))
    return verifier(policy, secrets, seen_ids)


def verifier(policy: VerifyPolicy, secrets: list[SecretValue], seen_ids: SeenIds) -> Filter:
    tolerance = policy.tolerance
    max_body = policy.max_body

    async def verify_webhook(exchange: Exchange, call_next: Handler) -> Response:
        headers = exchange.headers
        msg_id = headers.get("webhook-id")
        stamp = headers.get("webhook-timestamp")
        offered = headers.get("webhook-signature")
        if not (msg_id and stamp and offered):
            raise Unsigned("webhook-id, webhook-timestamp and webhook-signature are required")
        if not stamp.isdigit() or len(stamp) > 12:
            raise Stale("webhook-timestamp is not a Unix time in seconds")
        now = time.time()
        timestamp = int(stamp)
        if abs(now - timestamp) > tolerance:
            raise Stale(f"webhook-timestamp is more than {tolerance:g}s from now")
        body = await read_body(exchange, max_body)
        keys = [secret_key(s.get()) for s in secrets]
        if not matches(keys, msg_id, timestamp, body, offered):
            raise BadSignature("no webhook-signature matches a configured secret")
        # checked after the signature: an unsigned call cannot burn an id it does not own
        if seen_ids.seen(msg_id, now):
            raise Replayed("this webhook-id was already received")
        seen_ids.remember(msg_id, timestamp + tolerance, now)
        return await call_next(exchange)

    return verify_webhook
