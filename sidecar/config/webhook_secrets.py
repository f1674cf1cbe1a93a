"""What a Standard Webhooks secret is: ``whsec_`` followed by the base64 of a 24-64 byte key.

Senders that follow the Standard Webhooks spec (Svix and the libraries of
standardwebhooks.com) hand out secrets in this form; the HMAC key is the decoded part after the
prefix. Used where such secrets are checked (``sidecar check``, and each time a secret file is
re-read) and where they become keys (``verify_hmac`` with ``scheme: standard-webhooks``). Not
here: signing or verifying anything, and reading the secret (:mod:`.secrets`).
"""

from __future__ import annotations

__all__ = ["WHSEC_PREFIX", "whsec_key", "whsec_problem"]

import base64
import binascii

WHSEC_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
#: the key sizes the spec allows (bytes, once decoded)
_KEY_BYTES = range(24, 65)


def whsec_problem(value: str) -> str | None:
    """Why ``value`` is no Standard Webhooks secret, or ``None``; never repeats the value."""
    if not value.startswith(WHSEC_PREFIX):
        return "is not a Standard Webhooks secret: it must start with whsec_"
    try:
        key = base64.b64decode(value[len(WHSEC_PREFIX) :].strip(), validate=True)
    except (binascii.Error, ValueError):
        return "is not a Standard Webhooks secret: the part after whsec_ is not base64"
    if len(key) not in _KEY_BYTES:
        return "is not a Standard Webhooks secret: its key must be 24 to 64 bytes"
    return None


def whsec_key(value: str) -> bytes:
    """The HMAC key of a secret :func:`whsec_problem` accepted."""
    return base64.b64decode(value[len(WHSEC_PREFIX) :].strip(), validate=True)
