"""Standard Webhooks signatures of outbound deliveries (inbound ones are verified by the core's
``verify_hmac`` with ``scheme: standard-webhooks``).

The signed content is ``<webhook-id>.<webhook-timestamp>.<body>``; the signature is
``v1,<base64 of HMAC-SHA256>`` keyed by the base64-decoded part of a ``whsec_`` secret. Several
secrets sign at once (space-separated ``webhook-signature`` entries) so a receiver can rotate.
Pure functions, no I/O, no secret ever in a message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from .config import SECRET_PREFIX


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (already checked by :func:`config.secret_problem`)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sign_headers(
    keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes, *, hex_form: bool = False
) -> dict[str, str]:
    """The headers of one delivery attempt: id, timestamp and one signature per key."""
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(k, msg_id, timestamp, body) for k in keys),
    }
    if hex_form and keys:
        # the older single-secret form some receivers expect: the body alone, hex
        headers["x-webhook-signature"] = (
            "sha256=" + hmac.new(keys[0], body, hashlib.sha256).hexdigest()
        )
    return headers
