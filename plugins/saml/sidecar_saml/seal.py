"""Sealed cookie values: AES-256-GCM with a key derived from the configured secret.

A sealed value is ``v1.<base64url(nonce || ciphertext+tag)>``; the cookie's name is the
associated data, so a value sealed for one cookie (the login binding) is refused as another
(the session). It carries its own expiry, checked on open, so a copied cookie dies with its
lifetime whatever the browser does with ``Max-Age``. Anything that does not open, whatever the
reason, is ``None``: the caller treats it as no cookie. Not here: what the payload means
(:mod:`.flow`).
"""

from __future__ import annotations

__all__ = ["Sealer", "MAX_COOKIE_CHARS"]

import base64
import binascii
import json
import os
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: browsers keep about 4096 bytes per cookie, name and attributes included
MAX_COOKIE_CHARS = 3800
PREFIX = "v1."


class Sealer:
    """Seals and opens JSON payloads for named cookies with one secret."""

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"sidecar-saml cookie v1"
        ).derive(secret.encode())
        self._aead = AESGCM(key)
        self._clock = clock

    def seal(self, cookie: str, payload: dict[str, Any], lifetime: float) -> str:
        """``payload`` with an expiry ``lifetime`` seconds from now, sealed for ``cookie``."""
        body = dict(payload, exp=int(self._clock() + lifetime))
        nonce = os.urandom(12)
        data = json.dumps(body, separators=(",", ":")).encode()
        sealed = nonce + self._aead.encrypt(nonce, data, cookie.encode())
        return PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def open(self, cookie: str, value: str) -> dict[str, Any] | None:
        """The payload sealed for ``cookie``, or ``None`` (forged, for another cookie, expired,
        malformed, or too long to be ours)."""
        if not value.startswith(PREFIX) or len(value) > MAX_COOKIE_CHARS:
            return None
        text = value[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            if len(raw) < 12 + 16:
                return None
            data = self._aead.decrypt(raw[:12], raw[12:], cookie.encode())
            body = json.loads(data)
        except (InvalidTag, binascii.Error, ValueError):
            return None
        if not isinstance(body, dict) or not isinstance(body.get("exp"), int):
            return None
        if body["exp"] <= self._clock():
            return None
        return body
