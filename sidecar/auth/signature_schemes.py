"""The two forms of signed call ``verify_hmac`` accepts (``scheme``), as small strategies.

A scheme reads the call's headers into a :class:`Presented` (or a :class:`Refusal`: ``missing``,
``malformed``), computes the signature one secret gives the call, and names what is remembered
against replays. The flow around them (freshness, body bound, constant-time comparison, replay
store, metrics) is :mod:`.verify`'s, the same for both.

- :class:`SidecarScheme` (``sidecar``): ``X-Signature: sha256=<hex>`` over the string-to-sign
  of :mod:`.hmac` (timestamp, method, path and query, body digest), ``X-Timestamp``; header
  names and prefix configurable. Replays are recognised by their signature.
- :class:`StandardWebhooksScheme` (``standard-webhooks``, standardwebhooks.com): ``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature`` (fixed names) carrying space-separated
  ``v1,<base64 HMAC-SHA256>`` entries over ``<id>.<timestamp>.<body>``, keyed by the decoded
  part of a ``whsec_`` secret. Replays are recognised by their ``webhook-id``: a sender's retry
  is signed afresh but keeps its id, and is still the same event. Svix sends the same three
  headers named ``svix-id``, ``svix-timestamp``, ``svix-signature`` unless white-labelled; like
  the Svix and Standard Webhooks libraries, those are read when ``webhook-id`` is absent.

Not here: reading secrets, the clock, the body, or comparing.
"""

from __future__ import annotations

__all__ = ["Presented", "Refusal", "SidecarScheme", "StandardWebhooksScheme", "scheme_of"]

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import NamedTuple

from ..config.policies import VerifyHmacPolicy
from ..config.webhook_secrets import whsec_key
from ..exchange import Exchange, Headers
from .hmac import sign

#: bounds on what a Standard Webhooks call may present (they bound the work per call too)
MAX_ID_LENGTH = 256
MAX_SIGNATURES = 16


class Refusal(NamedTuple):
    """A call refused before its body is read: the metric's reason and the answer's detail."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Presented:
    """What a call's headers claim, parsed."""

    #: the timestamp as sent (digits), and as a number
    stamp: str
    signed_at: int
    #: each signature offered, as bytes to compare (latin-1: header values are)
    offered: tuple[bytes, ...]
    #: what identifies this call against replays
    replay_id: str


class SidecarScheme:
    """``sidecar``: the string-to-sign of :mod:`.hmac` (see the module docstring)."""

    name = "sidecar"

    def __init__(self, policy: VerifyHmacPolicy) -> None:
        self.header, self.ts_header, self.prefix = (
            policy.header,
            policy.timestamp_header,
            policy.prefix,
        )
        self.stale = f"{self.ts_header} is outside the accepted window of ±{policy.max_skew:g}s"
        self.mismatch = f"{self.header} does not match the call"
        self.replayed = "this signature was already accepted (a replayed call)"

    def key(self, secret: str) -> bytes:
        return secret.encode()

    def present(self, headers: Headers) -> Presented | Refusal:
        header, ts_header, prefix = self.header, self.ts_header, self.prefix
        provided = headers.get(header)
        stamp = headers.get(ts_header)
        if provided is None or stamp is None:
            return Refusal("missing", f"the call needs {header} and {ts_header} headers")
        stamp = stamp.strip()
        if not provided.startswith(prefix) or not _unix_time(stamp):
            return Refusal(
                "malformed", f"{header} is {prefix}<hex> and {ts_header} a Unix time in seconds"
            )
        got = provided[len(prefix) :].strip().lower()
        # bytes: compare_digest refuses non-ASCII str, and header values are latin-1
        return Presented(stamp, int(stamp), (got.encode("latin-1", "replace"),), got)

    def expected(self, key: bytes, call: Presented, exchange: Exchange, body: bytes) -> bytes:
        query = exchange.query
        target = f"{exchange.path}?{query}" if query else exchange.path
        return sign(key, call.stamp, exchange.method, target, body).encode()


#: the timestamp and signature headers that go with ``webhook-id`` / ``svix-id``
_STANDARD = ("webhook-timestamp", "webhook-signature")
_SVIX = ("svix-timestamp", "svix-signature")


class StandardWebhooksScheme:
    """``standard-webhooks`` (see the module docstring)."""

    name = "standard-webhooks"

    def __init__(self, policy: VerifyHmacPolicy) -> None:
        self.stale = f"webhook-timestamp is outside the accepted window of ±{policy.max_skew:g}s"
        self.mismatch = "no webhook-signature entry matches a configured secret"
        self.replayed = "this webhook-id was already accepted (a replayed call)"

    def key(self, secret: str) -> bytes:
        return whsec_key(secret)  # the value was checked when read (SecretValue's check)

    def present(self, headers: Headers) -> Presented | Refusal:
        msg_id = headers.get("webhook-id")
        if msg_id is None and "svix-id" in headers:
            msg_id, names = headers.get("svix-id"), _SVIX
        else:
            names = _STANDARD
        stamp = headers.get(names[0])
        signatures = headers.get(names[1])
        if not msg_id or stamp is None or signatures is None:
            return Refusal(
                "missing", "the call needs webhook-id, webhook-timestamp and webhook-signature"
            )
        stamp = stamp.strip()
        entries = signatures.split()
        offered = tuple(e[3:].encode("latin-1", "replace") for e in entries if e[:3] == "v1,")
        if (
            not _unix_time(stamp)
            or len(msg_id) > MAX_ID_LENGTH
            or not offered
            or len(entries) > MAX_SIGNATURES
        ):
            return Refusal(
                "malformed",
                f"webhook-id is 1-{MAX_ID_LENGTH} characters, webhook-timestamp a Unix time in "
                f"seconds, webhook-signature up to {MAX_SIGNATURES} entries with a v1,<base64>",
            )
        return Presented(stamp, int(stamp), offered, msg_id)

    def expected(self, key: bytes, call: Presented, exchange: Exchange, body: bytes) -> bytes:
        # header values are latin-1 decoded: encoding back gives the id's bytes as sent
        signed = b"%s.%s.%s" % (
            call.replay_id.encode("latin-1", "replace"),
            call.stamp.encode(),
            body,
        )
        return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())


Scheme = SidecarScheme | StandardWebhooksScheme


def _unix_time(stamp: str) -> bool:
    """Whether ``stamp`` is up to 12 ASCII digits (``"²"`` is a digit to ``isdigit``, not to
    ``int``)."""
    return stamp.isascii() and stamp.isdigit() and len(stamp) <= 12


def scheme_of(policy: VerifyHmacPolicy) -> Scheme:
    """The scheme ``policy.scheme`` names."""
    if policy.scheme == "standard-webhooks":
        return StandardWebhooksScheme(policy)
    return SidecarScheme(policy)
