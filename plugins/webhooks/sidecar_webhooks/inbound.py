"""The ``verify_webhook`` filter: refuses calls to an upstream unless they carry a valid
Standard Webhooks signature.

Configured per upstream under ``plugins.webhooks.verify`` (the app's own upstream, for webhooks
that arrive for it). A call passes when ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature`` are present, the timestamp is within ``tolerance`` of now, some ``v1``
signature matches some configured secret (several: rotation), and the id was not seen in a
call that passed within the tolerance window. Otherwise it gets a 401 whose
``x-sidecar-error`` says which check failed. The seen ids are kept in this process (bounded; the
oldest forgotten first), or with ``replay_redis`` in Redis, one ``SET NX`` per call, so replicas
agree; when Redis does not answer in time the call gets 503 (fail closed: the sender retries).
"""

from __future__ import annotations

import asyncio
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

from .config import ReplayRedis, VerifyPolicy, WebhooksConfig, secret_problem
from .signing import matches, secret_key


class Unsigned(SidecarError):
    status, grpc_code, code = 401, 16, "webhook_unsigned"  # 16: UNAUTHENTICATED


class Stale(SidecarError):
    status, grpc_code, code = 401, 16, "webhook_stale"


class BadSignature(SidecarError):
    status, grpc_code, code = 401, 16, "webhook_bad_signature"


class Replayed(SidecarError):
    status, grpc_code, code = 401, 16, "webhook_replayed"


class ReplayCheckUnavailable(SidecarError):
    status, grpc_code, code = 503, 14, "webhook_replay_check_unavailable"  # 14: UNAVAILABLE


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

    async def first_time(self, msg_id: str, until: float, now: float) -> bool:
        """Whether ``msg_id`` was not seen; remembers it until ``until`` either way."""
        if self.seen(msg_id, now):
            return False
        self.remember(msg_id, until, now)
        return True


class RedisSeenIds:
    """Seen ids in Redis: ``SET <prefix><upstream>:<id> 1 NX PXAT <until>``, atomic across
    replicas. The client connects on first use: building one (``sidecar check``) costs nothing."""

    def __init__(self, settings: ReplayRedis, upstream: str) -> None:
        self.prefix = f"{settings.key_prefix}{upstream}:"
        self.timeout = settings.timeout
        password = settings.password.reveal() if settings.password is not None else None
        # imported here: a sidecar without replay_redis never loads redis-py (about 10 MB and
        # 0.1 s at start)
        import redis.asyncio

        self._errors: tuple[type[BaseException], ...] = (TimeoutError, redis.RedisError, OSError)
        self.client = redis.asyncio.Redis.from_url(
            settings.url,
            password=password,
            socket_timeout=settings.timeout,
            socket_connect_timeout=settings.timeout,
        )

    async def first_time(self, msg_id: str, until: float, now: float) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                created = await self.client.set(
                    self.prefix + msg_id, b"1", nx=True, pxat=int(until * 1000)
                )
        except self._errors:
            raise ReplayCheckUnavailable("the replay check could not reach its store") from None
        return bool(created)

    async def aclose(self) -> None:
        await self.client.aclose()


SEEN_IDS: SharedKey[SeenIds] = SharedKey("webhooks_seen_ids")
REDIS_SEEN_IDS: SharedKey[RedisSeenIds] = SharedKey("webhooks_redis_seen_ids")
#: under ``runtime.resources``: the Redis stores built while the sidecar runs, which the
#: plugin's lifespan closes at shutdown (shared objects have no close of their own)
REDIS_STORES = "sidecar_webhooks.redis_stores"


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
    seen_ids: SeenIds | RedisSeenIds
    shared_redis = policy.replay_redis
    if shared_redis is not None:
        upstream = ctx.upstream_name
        to_close = ctx.resources.get(REDIS_STORES)

        def build() -> RedisSeenIds:
            store = RedisSeenIds(shared_redis, upstream)
            if isinstance(to_close, list):
                to_close.append(store)
            return store

        seen_ids = ctx.shared(REDIS_SEEN_IDS, shared_redis, build)
    else:
        seen_ids = ctx.shared(SEEN_IDS, policy.replay_cache, lambda: SeenIds(policy.replay_cache))
    return verifier(policy, secrets, seen_ids)


def verifier(
    policy: VerifyPolicy, secrets: list[SecretValue], seen_ids: SeenIds | RedisSeenIds
) -> Filter:
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
        if not await seen_ids.first_time(msg_id, timestamp + tolerance, now):
            raise Replayed("this webhook-id was already received")
        return await call_next(exchange)

    return verify_webhook
