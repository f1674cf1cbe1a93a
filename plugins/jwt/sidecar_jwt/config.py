"""The ``plugins.jwt`` section: token issuers (providers) and the policies naming them.

A provider says whose tokens are accepted and how they are checked (issuer, audiences,
algorithms, keys, clock skew, required claims, claims copied to headers, where the token is
read). A policy says where a provider applies: on the inbound listener (every route, or named
routes) and, for calls the app makes through the HTTP port, per upstream or per explicit route.
Everything here is checked by ``sidecar check``; nothing here reads a key or opens a socket.
"""

from __future__ import annotations

__all__ = [
    "ASYMMETRIC",
    "EgressPolicies",
    "InboundPolicy",
    "JwksConfig",
    "JwtConfig",
    "Policy",
    "ProviderConfig",
    "StaticKey",
    "SYMMETRIC",
    "TokenSource",
]

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from sidecar import Duration, Model, SecretRef, Size

#: algorithms verified with a public key; the key's type must match the algorithm's family
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: algorithms verified with a shared secret (static keys only, never from a JWKS)
SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})
#: a header name as HTTP allows it (token characters), lower-cased by the validator
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
#: a claim name or a required value: printable ASCII without quotes or backslashes, so it can
#: be named in a WWW-Authenticate header as it is
PLAIN = r"^[!#-\[\]-~]+$"
#: headers the plugin may never set (they steer the proxy or the connection)
FORBIDDEN_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "cookie"}
)
#: a provider's name: the realm of its challenges, so it must be quoted-string safe
PROVIDER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: the kid of a static key: what a token's header may name it by
KID = r"^[A-Za-z0-9._~:+/=-]{1,128}$"

Algorithm = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{2,10}$")]
ClaimName = Annotated[str, Field(pattern=PLAIN, max_length=64)]
HeaderName = Annotated[str, Field(pattern=HEADER_NAME, max_length=128)]


class JwksConfig(Model):
    """Keys fetched from a JWKS endpoint, cached, refreshed, refetched on an unknown ``kid``."""

    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    #: a PEM file of the CAs an ``https`` endpoint's certificate must come from (a private
    #: issuer); none: the system's CAs
    ca: str | None = Field(default=None, min_length=1, max_length=4096)
    #: keys are fetched again this long after the last successful fetch
    refresh_interval: Duration = 600.0
    #: at most one fetch per this interval, whatever the tokens say (a flood of random kids
    #: costs the JWKS endpoint one call per interval)
    min_refetch_interval: Duration = 30.0
    #: when fetching fails, keys older than refresh_interval are still used for this long
    max_stale: Duration = 3600.0
    #: one fetch, connect to last byte
    timeout: Duration = 5.0
    #: a larger answer is refused (and the keys held are kept)
    max_bytes: Size = 256 * 1024
    #: keys kept from one answer, in its order
    max_keys: int = Field(default=64, ge=1, le=1024)

    @field_validator("refresh_interval", "min_refetch_interval", "timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise PydanticCustomError("positive", "must be more than 0")
        return v


class StaticKey(Model):
    """One key given by reference: a PEM public key (asymmetric) or a shared secret (HS*)."""

    #: the ``kid`` tokens name it by; none: it is tried for tokens without a ``kid``
    kid: str | None = Field(default=None, pattern=KID)
    #: the one algorithm this key verifies (the key's type must match it)
    alg: Algorithm
    #: ``{file: /path/key.pem}`` or ``{env: NAME}``: a PEM public key, or the HS* secret
    key: SecretRef

    @field_validator("alg")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ASYMMETRIC | SYMMETRIC:
            raise PydanticCustomError(
                "algorithm", "unsupported algorithm (one of {known})", {"known": _known_list()}
            )
        return v


class TokenSource(Model):
    """Where a call's token is read: a header (``Authorization: Bearer`` by default) or a
    cookie."""

    header: HeaderName = "authorization"
    #: the scheme before the token in the header (case-insensitive); none: the whole value
    scheme: str | None = Field(default="Bearer", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    #: read the token from this cookie instead of the header
    cookie: str | None = Field(default=None, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")

    @field_validator("header")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()


class ProviderConfig(Model):
    """One token issuer and how its tokens are checked."""

    issuer: str = Field(min_length=1, max_length=1024)
    #: a token's ``aud`` must name at least one of these
    audiences: list[str] = Field(min_length=1, max_length=32)
    #: the allow-list; ``none`` is never accepted, whatever is written here
    algorithms: list[Algorithm] = Field(default=["RS256"], min_length=1)
    jwks: JwksConfig | None = None
    keys: list[StaticKey] = Field(default=[], max_length=64)
    #: clock skew allowed on exp, nbf and iat
    leeway: Duration = 30.0
    #: claims a token must carry (exp always; iss and aud are checked against the above)
    required_claims: list[ClaimName] = ["exp"]
    #: claim -> request header the app gets it in (the app's own copies are removed first)
    claims_to_headers: dict[ClaimName, HeaderName] = Field(default={}, max_length=32)
    token: TokenSource = TokenSource()
    #: a longer token is refused before it is parsed
    max_token_bytes: Size = 8 * 1024
    #: keep the token on the forwarded call (the app may want it); false removes it
    forward_token: bool = True

    @field_validator("algorithms")
    @classmethod
    def _allowed(cls, v: list[str]) -> list[str]:
        for alg in v:
            if alg.lower() == "none":
                raise PydanticCustomError("algorithm", "'none' is never accepted")
            if alg not in ASYMMETRIC | SYMMETRIC:
                raise PydanticCustomError(
                    "algorithm", "unsupported algorithm (one of {known})", {"known": _known_list()}
                )
        return v

    @field_validator("claims_to_headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        lowered = {claim: header.lower() for claim, header in v.items()}
        for header in lowered.values():
            if header in FORBIDDEN_HEADERS or header == "authorization":
                raise PydanticCustomError(
                    "header", "the header {h} cannot carry a claim", {"h": header}
                )
        if len(set(lowered.values())) != len(lowered):
            raise PydanticCustomError("header", "two claims map to one header")
        return lowered

    @model_validator(mode="after")
    def _keys(self) -> ProviderConfig:
        if (self.jwks is None) == (not self.keys):
            raise PydanticCustomError("keys", "give exactly one of jwks or keys")
        if self.jwks is not None and set(self.algorithms) & SYMMETRIC:
            raise PydanticCustomError(
                "keys", "HS* algorithms need static keys: a JWKS never supplies shared secrets"
            )
        for key in self.keys:
            if key.alg not in self.algorithms:
                raise PydanticCustomError(
                    "keys", "a key's alg {alg} is not in algorithms", {"alg": key.alg}
                )
        if self.token.header in self.claims_to_headers.values():
            raise PydanticCustomError("keys", "the token's header cannot carry a claim")
        return self


class Policy(Model):
    """Which provider checks a route's calls, and what its token must grant."""

    provider: str = Field(min_length=1, max_length=64)
    #: claim -> values it must contain, all of them (a list claim, or a space-separated string
    #: as OAuth's ``scope``); a token lacking one is refused with 403 insufficient_scope
    require: dict[ClaimName, list[Annotated[str, Field(pattern=PLAIN, max_length=256)]]] = {}


class InboundPolicy(Policy):
    """The inbound listener: this policy on every route, unless ``routes`` says otherwise."""

    #: inbound route name -> its own policy, or null for no token check on that route
    routes: dict[str, Policy | None] = {}


class EgressPolicies(Model):
    """Calls the app makes through the sidecar: by upstream, or by explicit route (first)."""

    upstreams: dict[str, Policy] = {}
    routes: dict[str, Policy] = {}


class JwtConfig(Model):
    """The section ``plugins.jwt``; empty: the plugin checks nothing."""

    providers: dict[str, ProviderConfig] = Field(default={}, max_length=32)
    #: tokens on the inbound (mTLS) listener; none: not checked there
    inbound: InboundPolicy | None = None
    egress: EgressPolicies = EgressPolicies()

    @field_validator("providers")
    @classmethod
    def _names(cls, v: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        for name in v:
            if not PROVIDER_NAME.match(name):
                raise PydanticCustomError(
                    "provider_name",
                    "a provider's name is 1-64 letters, digits, _ or - (it is the realm of "
                    "WWW-Authenticate)",
                )
        return v

    @model_validator(mode="after")
    def _providers_exist(self) -> JwtConfig:
        named: list[tuple[str, Policy | None]] = []
        if self.inbound is not None:
            named.append(("inbound.provider", self.inbound))
            named += [(f"inbound.routes.{r}", p) for r, p in self.inbound.routes.items()]
        named += [(f"egress.upstreams.{u}", p) for u, p in self.egress.upstreams.items()]
        named += [(f"egress.routes.{r}", p) for r, p in self.egress.routes.items()]
        for where, policy in named:
            if policy is not None and policy.provider not in self.providers:
                raise PydanticCustomError(
                    "provider",
                    "{where} names the provider {p}, which is not under providers",
                    {"where": where, "p": policy.provider},
                )
        return self


def _known_list() -> str:
    return ", ".join(sorted(ASYMMETRIC | SYMMETRIC))
