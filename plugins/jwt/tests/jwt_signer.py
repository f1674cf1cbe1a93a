"""Tokens and keys made with joserfc, an implementation independent of the PyJWT the plugin
validates with, plus the hand-made forgeries no library would sign (alg none, HS256 keyed with
an RSA public key)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

ISSUER = "https://issuer.test"
AUDIENCE = "api://shop"
#: an HS256 secret of the length RFC 7518 asks for
SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret!"  # noqa: S105 - a test key


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**over: Any) -> dict[str, Any]:
    """Claims a provider for ISSUER / AUDIENCE accepts, valid for five minutes; ``None``
    values are removed."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "exp": now + 300,
        "scope": "orders.read profile",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


class Keys:
    """One key of each type a provider can verify, with its kid."""

    def __init__(self, suffix: str = "1") -> None:
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": f"rsa-{suffix}"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": f"ec-{suffix}"})
        self.okp = OKPKey.generate_key("Ed25519", parameters={"kid": f"ed-{suffix}"})
        self.oct = OctKey.import_key(SECRET.encode(), parameters={"kid": f"hs-{suffix}"})

    def jwks(self) -> dict[str, Any]:
        """The public JWKS of the asymmetric keys (never the shared secret)."""
        return {"keys": [k.as_dict(private=False) for k in (self.rsa, self.ec, self.okp)]}

    def rsa_pem(self) -> str:
        return self.rsa.as_pem(private=False).decode()

    def ec_pem(self) -> str:
        return self.ec.as_pem(private=False).decode()


def sign(key: Any, alg: str, body: dict[str, Any], **header: Any) -> str:
    """A token signed by joserfc; the header's kid is the key's unless given (None: none)."""
    kid = header.pop("kid", key.kid)
    head: dict[str, Any] = {"alg": alg, **header}
    if kid is not None:
        head["kid"] = kid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EdDSA is "not recommended" by joserfc: we mean it
        return jwt.encode(head, body, key, algorithms=[alg])


def unsigned(body: dict[str, Any], **header: Any) -> str:
    """``alg: none``: an empty signature."""
    head = {"alg": "none", "typ": "JWT", **header}
    return f"{b64(json.dumps(head).encode())}.{b64(json.dumps(body).encode())}."


def hs256_with(secret: bytes, body: dict[str, Any], **header: Any) -> str:
    """HS256 keyed with any bytes (the RSA public key's PEM, for the confusion attack)."""
    head = {"alg": "HS256", "typ": "JWT", **header}
    signing = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(body).encode())}"
    mac = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(mac)}"
