"""Checking one token with PyJWT: shape and size first, then the header (alg on the allow-list,
a sane ``kid``, no ``crit``), then the signature with a key of the algorithm's own type, then
the claims (exp, nbf, iat with leeway, iss, aud, required claims).

The cheap checks come first and nothing a caller sends can make the sidecar fetch anything but
the configured JWKS: ``jku``, ``x5u`` and ``jwk`` header parameters are ignored, and a ``kid``
is only ever a dictionary key, never a path or a URL.
"""

from __future__ import annotations

__all__ = ["KeySource", "Verifier", "token_from"]

import re
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from jwt import exceptions as jwt_errors
from sidecar import Headers

from .config import KID, ProviderConfig
from .errors import InvalidRequest, InvalidToken, MissingToken
from .keys import Key

#: ``candidates(kid, alg) -> keys to try``
KeySource = Callable[[str | None, str], Awaitable[list[Key]]]
#: a JWS in compact form: three base64url parts (a JWE's five, or padding, are refused)
COMPACT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
SANE_KID = re.compile(KID)
#: what a hostile token's JSON can make a parser raise besides PyJWT's own errors (nesting past
#: the recursion limit, integers past Python's digit limit, infinities)
HOSTILE = (jwt_errors.PyJWTError, ValueError, TypeError, OverflowError, RecursionError)
#: how PyJWT's refusals are described to the caller (fixed strings, never the token's data)
REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt_errors.ExpiredSignatureError, "the token has expired"),
    (jwt_errors.ImmatureSignatureError, "the token is not valid yet"),
    (jwt_errors.InvalidAudienceError, "the token is not for this audience"),
    (jwt_errors.InvalidIssuerError, "the token is from another issuer"),
    (jwt_errors.MissingRequiredClaimError, "the token lacks a required claim"),
    (jwt_errors.InvalidSignatureError, "the signature does not verify"),
    (jwt_errors.InvalidIssuedAtError, "the token's iat is invalid"),
    (jwt_errors.DecodeError, "the token is malformed"),
)


def token_from(headers: Headers, provider: ProviderConfig, realm: str) -> str:
    """The call's token, from the configured header or cookie."""
    source = provider.token
    if source.cookie is not None:
        found = [
            value
            for line in headers.get_all("cookie")
            for name, _, value in (part.strip().partition("=") for part in line.split(";"))
            if name == source.cookie
        ]
        if not found:
            raise MissingToken(realm)
        if len(found) > 1:
            raise InvalidRequest(realm, "the call carries more than one token")
        return str(found[0]).strip('"')
    values = headers.get_all(source.header)
    if not values:
        raise MissingToken(realm)
    if len(values) > 1:
        raise InvalidRequest(realm, "the call carries more than one token")
    value = values[0].strip()
    if source.scheme is None:
        return str(value)
    scheme, _, token = value.partition(" ")
    if scheme.lower() != source.scheme.lower():
        raise MissingToken(realm)  # another scheme (Basic...): no bearer token was given
    return str(token).strip()


class Verifier:
    """Checks tokens for one provider; built once per route, called per request."""

    def __init__(self, realm: str, provider: ProviderConfig, keys: KeySource) -> None:
        self.realm = realm
        self.provider = provider
        self._keys = keys
        self._algorithms = frozenset(provider.algorithms)
        self._options: Any = {"require": sorted(set(provider.required_claims) | {"exp"})}

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, once every check passed; raises :class:`InvalidToken`."""
        if len(token) > self.provider.max_token_bytes:
            raise InvalidToken(self.realm, "the token is too large")
        if not COMPACT.match(token):
            raise InvalidToken(self.realm, "the token is malformed")
        try:
            header = jwt.get_unverified_header(token)
        except HOSTILE:
            raise InvalidToken(self.realm, "the token is malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken(self.realm, "the token's algorithm is not allowed")
        if kid is not None and not (isinstance(kid, str) and SANE_KID.match(kid)):
            raise InvalidToken(self.realm, "the token's kid is malformed")
        if "crit" in header:
            raise InvalidToken(self.realm, "the token has critical extensions")
        keys = await self._keys(kid, alg)
        if not keys:
            raise InvalidToken(self.realm, "no key for the token")
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key.material,
                    algorithms=[alg],
                    audience=self.provider.audiences,
                    issuer=self.provider.issuer,
                    leeway=self.provider.leeway,
                    options=self._options,
                )
            except jwt_errors.InvalidSignatureError:
                continue  # another key of the same kid (or of none) may verify it
            except jwt_errors.PyJWTError as e:
                raise InvalidToken(self.realm, _reason(e)) from None
            except HOSTILE:  # JSON built to hurt a parser: never a 500
                raise InvalidToken(self.realm, "the token is malformed") from None
            return claims
        raise InvalidToken(self.realm, "the signature does not verify")


def _reason(error: Exception) -> str:
    for kind, reason in REASONS:
        if isinstance(error, kind):
            return reason
    return "the token is invalid"
