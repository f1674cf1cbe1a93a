"""The webhooks plugin's settings: the ``webhooks`` adapter's options and ``plugins.webhooks``.

Outbound delivery is configured on the upstream the app posts events to
(``upstreams.<u>.options``, adapter ``webhooks``): where the durable queue lives, the endpoints
and the event types each subscribes to, their secrets (by reference only) and the retry schedule.
Inbound verification is the core's ``verify_hmac`` with ``scheme: standard-webhooks``
(docs/credentials.md), not this plugin's. This module only declares and validates; reading
secrets and delivering are elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from sidecar import Duration, Model, SecretRef, Size

#: names that become file names and metric labels: short, plain
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
#: an event type is the last path segment of the app's POST; also an endpoint's subscription
EVENT_TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
URL_PATTERN = r"^https?://[^\s/]+"
SECRET_PREFIX = "whsec_"  # noqa: S105 (the scheme's prefix, not a secret)


def refuse_inline(value: Any) -> Any:
    """A secret written into the file is refused without being repeated in the error."""
    if isinstance(value, list) and any(isinstance(item, str) for item in value):
        raise PydanticCustomError(
            "secret_inline",
            "a secret is given by reference, {env: NAME} or {file: PATH}, never inline",
        )
    return value


Secrets = Annotated[list[SecretRef], BeforeValidator(refuse_inline)]


def url_problem(value: str) -> str | None:
    """Why a URL given by reference cannot be delivered to (never repeating it)."""
    return None if re.match(URL_PATTERN, value) else "is not an http:// or https:// URL"


def secret_problem(value: str) -> str | None:
    """Why ``value`` is no Standard Webhooks secret (``whsec_`` + base64), or ``None``.

    The message never contains the value."""
    if not value.startswith(SECRET_PREFIX):
        return "is not a Standard Webhooks secret: it must start with whsec_"
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return "is not a Standard Webhooks secret: the part after whsec_ is not base64"
    if not 24 <= len(key) <= 64:
        return "is not a Standard Webhooks secret: its key must be 24 to 64 bytes"
    return None


class RetryPolicy(Model):
    """When a failed delivery is tried again: ``first_delay * 2**(n-1)`` after the n-th failed
    attempt, capped at ``max_delay``, each delay multiplied by a random factor in
    ``[1 - jitter, 1 + jitter]``; a ``Retry-After`` answer replaces the computed delay (capped
    at ``max_delay`` as well). After ``attempts`` attempts the delivery is dead."""

    attempts: int = Field(default=8, ge=1, le=50)
    first_delay: Duration = Field(default=5.0, gt=0)
    max_delay: Duration = Field(default=3600.0, gt=0)
    jitter: float = Field(default=0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_delay < self.first_delay:
            raise ValueError("max_delay must be at least first_delay")
        return self


class Breaker(Model):
    """An endpoint's breaker: after ``failures`` failed attempts in a row nothing is sent to it
    for ``open_for``; then one delivery probes it. ``failures: 0`` turns it off."""

    failures: int = Field(default=5, ge=0, le=1000)
    open_for: Duration = Field(default=30.0, gt=0, le=3600)


class Endpoint(Model):
    """One receiver of webhooks: deliveries go to ``url`` and nowhere else (never a redirect)."""

    #: the URL, or a reference to it (``{env: NAME}`` / ``{file: PATH}``) when it is itself a
    #: secret (a token in its path): then neither ``/config`` nor the admin view shows it
    url: Annotated[str, Field(pattern=URL_PATTERN)] | SecretRef
    #: the event types delivered here; ``"*"`` subscribes to every type
    events: list[str] = Field(min_length=1, max_length=1000)
    #: one or more ``whsec_`` secrets by reference; every one signs each delivery (rotation)
    secrets: Secrets = Field(min_length=1, max_length=8)
    concurrency: int = Field(default=4, ge=1, le=256)
    timeout: Duration = Field(default=10.0, gt=0, le=300)
    #: also send ``x-webhook-signature: sha256=<hex>`` (HMAC-SHA256 of the body, first secret)
    hex_signature: bool = False
    breaker: Breaker = Breaker()

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        for item in v:
            if item != "*" and not re.match(EVENT_TYPE_PATTERN, item):
                raise ValueError(f"{item!r} is no event type (letters, digits, . _ : -) nor '*'")
        return v

    def subscribes(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class RedisQueueOptions(Model):
    """The outbound queue in Redis Streams, shared by every sidecar replica configured alike."""

    url: str = Field(pattern=r"^rediss?://")
    #: by reference; read (and reported at its key path) with the endpoints' secrets
    password: SecretRef | None = None
    #: each command; past it the app gets 503 and the deliveries wait for Redis to answer again
    timeout: Duration = Field(default=2.0, gt=0, le=30)
    #: keys are ``<key_prefix>{<upstream>}:<name>`` (one hash slot per upstream)
    key_prefix: str = Field(default="sidecar:webhooks:", max_length=100)
    #: a delivery a replica read and has not finished for this long (the replica died) is taken
    #: over by another; a live replica renews the deliveries it holds well before that
    claim_idle: Duration = Field(default=60.0, ge=0.5, le=86400)
    #: deliveries one replica holds at most (read from the stream, not finished)
    prefetch: int = Field(default=64, ge=1, le=10_000)


class WebhooksOptions(Model):
    """``upstreams.<u>.options`` of an upstream with ``adapter: webhooks``: the queue is a
    directory (``store_dir``, the default kind) or Redis Streams (``redis``), exactly one."""

    #: the durable queue's directory (created if missing); one sub-directory per upstream
    store_dir: str | None = Field(default=None, min_length=1)
    #: the durable queue in Redis Streams instead (replicas share it)
    redis: RedisQueueOptions | None = None
    endpoints: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Endpoint] = Field(
        min_length=1, max_length=100
    )
    retry: RetryPolicy = RetryPolicy()
    #: the largest event body accepted from the app (413 past it)
    max_body: Size = Field(default=256 * 1024, ge=1, le=16 * 1024 * 1024)
    #: deliveries waiting (pending) at most; past it the app gets 503 and should retry later
    max_pending: int = Field(default=100_000, ge=1, le=10_000_000)
    #: dead deliveries kept for inspection and redelivery; the oldest go first past it
    max_dead: int = Field(default=10_000, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _one_queue(self) -> WebhooksOptions:
        if (self.store_dir is None) == (self.redis is None):
            raise ValueError("give the queue as exactly one of store_dir or redis")
        return self


class WebhooksConfig(Model):
    """``plugins.webhooks``: no keys of its own today (endpoints are adapter options)."""

    @model_validator(mode="before")
    @classmethod
    def _verify_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "verify" in data:
            # the plugin's own inbound filter is gone: say where its settings went
            raise PydanticCustomError(
                "moved",
                "verify is gone: inbound webhooks are verified by upstreams.<u>.verify_hmac "
                "with scheme: standard-webhooks (docs/credentials.md)",
            )
        return data
