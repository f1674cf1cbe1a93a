"""Verification keys and which algorithm each may verify: static keys, and JWKS parsing.

A key is only ever used with an algorithm of its own type (:func:`fits`): an RSA key for
RS*/PS*, an EC key of the algorithm's curve for ES*, an Ed25519/Ed448 key for EdDSA, a shared
secret for HS*. That is what makes "HS256 signed with the RSA public key" fail: no secret key
exists to try it with. A JWKS never supplies a shared secret (``kty: oct`` entries are dropped).

Not here: fetching and caching a JWKS (:mod:`.jwks`), checking tokens (:mod:`.verify`).
Imported only when a provider is configured (it loads ``cryptography`` and PyJWT).
"""

from __future__ import annotations

__all__ = ["Key", "StaticKeys", "fits", "parse_jwks"]

import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK
from jwt.exceptions import PyJWKError, PyJWTError
from sidecar import AuthConfigProblem, SecretValue

from .config import SYMMETRIC, StaticKey

#: the curve each ES* algorithm is defined on
CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
#: the shortest secret each HS* algorithm accepts (its hash's length, RFC 7518 section 3.2)
MIN_SECRET = {"HS256": 32, "HS384": 48, "HS512": 64}


@dataclass(frozen=True, slots=True)
class Key:
    """A verification key, its ``kid`` (or none) and the algorithm it is pinned to (or none:
    any algorithm its type fits)."""

    kid: str | None
    alg: str | None
    material: Any  # a cryptography public key, or bytes for HS*

    def verifies(self, alg: str) -> bool:
        return (self.alg is None or self.alg == alg) and fits(alg, self.material)


def fits(alg: str, material: Any) -> bool:
    """Whether ``material`` is a key of the type ``alg`` is defined for."""
    if alg in SYMMETRIC:
        return isinstance(material, bytes)
    if alg[:2] in ("RS", "PS"):
        return isinstance(material, rsa.RSAPublicKey)
    if alg in CURVES:
        return isinstance(material, ec.EllipticCurvePublicKey) and (
            material.curve.name == CURVES[alg]
        )
    if alg == "EdDSA":
        return isinstance(material, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


class StaticKeys:
    """Keys given by reference in the config; each file is re-read when it changes."""

    def __init__(self, keys: list[StaticKey], key_path: str) -> None:
        # reading now: a missing or unusable file stops start-up (or the reload) naming it
        self._values = [
            (spec, SecretValue(spec.key, f"{key_path}.keys[{i}].key"))
            for i, spec in enumerate(keys)
        ]
        self._parsed: dict[int, tuple[str, Key]] = {}
        for i, (spec, value) in enumerate(self._values):
            self._parsed[i] = (value.get(), _static(spec, value.get(), f"{key_path}.keys[{i}]"))

    def candidates(self, kid: str | None, alg: str) -> list[Key]:
        """The keys to try for a token with ``kid`` and ``alg``: those named ``kid``, else
        those with no kid."""
        keys = [self._current(i) for i in range(len(self._values))]
        named = [k for k in keys if kid is not None and k.kid == kid and k.verifies(alg)]
        return named or [k for k in keys if k.kid is None and k.verifies(alg)]

    def _current(self, i: int) -> Key:
        spec, value = self._values[i]
        text = value.get()  # a stat at most once per interval
        seen, key = self._parsed[i]
        if text != seen:
            try:
                key = _static(spec, text, "a rotated key")
            except (BadKey, AuthConfigProblem):
                return key  # a half-written or bad new file: keep the key that worked
            self._parsed[i] = (text, key)
        return key


class BadKey(ValueError):
    """A static key that cannot be used for its algorithm (the value is never repeated); raised
    while composing, it stops start-up (or refuses the reload) with its key path."""


def _static(spec: StaticKey, text: str, where: str) -> Key:
    if spec.alg in SYMMETRIC:
        secret = text.encode()
        if b"-----BEGIN" in secret:
            # a PEM as an HMAC secret is the algorithm-confusion attack's key
            raise BadKey(f"{where}: an {spec.alg} secret must not be a PEM key")
        if len(secret) < MIN_SECRET[spec.alg]:
            raise BadKey(f"{where}: an {spec.alg} secret needs {MIN_SECRET[spec.alg]}+ bytes")
        return Key(spec.kid, spec.alg, secret)
    try:
        material = load_pem_public_key(text.encode())
    except (ValueError, TypeError):
        raise BadKey(f"{where}: not a PEM public key") from None
    if not fits(spec.alg, material):
        raise BadKey(f"{where}: the key's type does not fit {spec.alg}")
    return Key(spec.kid, spec.alg, material)


def parse_jwks(body: bytes, max_keys: int) -> list[Key]:
    """The signing keys of a JWKS document; unusable entries are skipped, a document that is
    not a JWKS raises ``ValueError``."""
    document = json.loads(body)
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a JWKS document (no keys list)")
    keys: list[Key] = []
    for entry in entries[:max_keys]:
        key = _jwk(entry)
        if key is not None:
            keys.append(key)
    return keys


def _jwk(entry: Any) -> Key | None:
    if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
        return None  # oct (shared secrets) never comes from a JWKS; unknown types are skipped
    if entry.get("use", "sig") != "sig":
        return None
    kid, alg = entry.get("kid"), entry.get("alg")
    if (kid is not None and not isinstance(kid, str)) or (alg is not None and alg in SYMMETRIC):
        return None
    public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
    try:
        material = PyJWK(public).key
    except (PyJWKError, PyJWTError, ValueError, TypeError, KeyError):  # one bad entry: skipped
        return None
    if not isinstance(alg, str):
        alg = None
    return Key(kid, alg, material)
