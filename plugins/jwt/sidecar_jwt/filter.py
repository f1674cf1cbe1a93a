"""The ``jwt`` filter of one route: which policy applies there, and the per-call work.

Per call: the app-facing copies of the claim headers are removed (so a caller cannot forge
them), the token is read and verified, the route's requirements checked (403 when a claim lacks
a required value), and the mapped claims set as headers, sanitised. The verified claims are in
``exchange.stash[CLAIMS]`` for filters further in.

Imported only when a policy applies to a route (it loads PyJWT and cryptography).
"""

from __future__ import annotations

__all__ = ["build_filter", "header_value", "policy_for", "strip_only", "unknown_names"]

import ssl
from collections.abc import Mapping
from typing import Any

from sidecar import Exchange, Filter, Handler, Response, RouteContext, SidecarConfig, StashKey

from .config import JwtConfig, Policy
from .errors import InsufficientScope
from .jwks import KeyStore
from .keys import Key, StaticKeys
from .verify import Verifier, token_from

#: the verified claims of the call, for filters further in
CLAIMS: StashKey[Mapping[str, Any]] = StashKey("jwt.claims")
#: a header value set from a claim is cut here
MAX_HEADER_VALUE = 1024


def policy_for(ctx: RouteContext, cfg: JwtConfig) -> Policy | None:
    """The policy of this route: the inbound one on the peer-facing front, else egress by
    explicit route, then by upstream."""
    if ctx.front.peer_identity:  # the inbound listener: peers calling the app
        if cfg.inbound is None:
            return None
        if ctx.route in cfg.inbound.routes:
            return cfg.inbound.routes[ctx.route]
        return cfg.inbound
    if ctx.route_config is not None and ctx.route in cfg.egress.routes:
        return cfg.egress.routes[ctx.route]
    return cfg.egress.upstreams.get(ctx.upstream_name)


def unknown_names(config: SidecarConfig, cfg: JwtConfig) -> tuple[str, str] | None:
    """The first policy naming a route or upstream the config does not have, as a problem
    (key path, reason): a misspelt ``admin`` would otherwise leave that route with a weaker
    policy, silently."""
    named: list[tuple[str, str, set[str]]] = []
    if cfg.inbound is not None:
        inbound = config.inbound
        have = {"inbound"} | {
            r.name or f"inbound-{i}" for i, r in enumerate(inbound.routes if inbound else [])
        }
        named += [("inbound.routes", name, have) for name in cfg.inbound.routes]
    upstreams = set(config.upstreams)
    routes = {r.name or f"route-{i}" for i, r in enumerate(config.routes)}
    named += [("egress.upstreams", name, upstreams) for name in cfg.egress.upstreams]
    named += [("egress.routes", name, routes) for name in cfg.egress.routes]
    for where, name, have in named:
        if name not in have:
            kind = where.split(".")[1][:-1]
            return f"plugins.jwt.{where}.{name}", f"no such {kind} in the config"
    return None


def header_value(value: Any) -> str | None:
    """A claim as a header value: strings, numbers and booleans as text, a list of them joined
    by ``,``; control characters, non-ASCII and ``%`` percent-encoded (UTF-8), so no claim can
    split a header or smuggle one; cut at MAX_HEADER_VALUE. Objects and null: no header."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | int | float):
        text = str(value)
    elif isinstance(value, list) and all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        text = ",".join(str(v) for v in value)
    else:
        return None
    out = "".join(
        c if " " <= c <= "~" and c != "%" else "".join(f"%{b:02X}" for b in c.encode())
        for c in text[:MAX_HEADER_VALUE]
    )
    return out[:MAX_HEADER_VALUE].strip() or None


def _contains(claim: Any, wanted: list[str]) -> bool:
    if isinstance(claim, str):
        have = set(claim.split())
    elif isinstance(claim, list):
        have = {v for v in claim if isinstance(v, str)}
    else:
        return False
    return all(w in have for w in wanted)


def claim_headers(cfg: JwtConfig) -> tuple[str, ...]:
    """Every header any provider sets from a claim: removed from every checked call (and every
    inbound call), whichever provider the route uses, so none can be forged."""
    return tuple(sorted({h for p in cfg.providers.values() for h in p.claims_to_headers.values()}))


def strip_only(cfg: JwtConfig) -> Filter | None:
    """For an inbound route whose check is off: the claim headers removed, so the app never
    takes a peer's own ``x-user-id`` for one the sidecar set."""
    forged = claim_headers(cfg)
    if not forged:
        return None

    async def jwt_strip(exchange: Exchange, call_next: Handler) -> Response:
        for header in forged:
            exchange.headers.remove(header)
        return await call_next(exchange)

    return jwt_strip


def build_filter(cfg: JwtConfig, policy: Policy, store: KeyStore) -> Filter:
    """The filter of one route under ``policy``; reads its static keys now."""
    name = policy.provider
    provider = cfg.providers[name]
    if provider.jwks is not None:
        try:
            jwks = store.jwks(provider.jwks)
        except (OSError, ssl.SSLError) as e:  # SSLError is an OSError; named for the reader
            where = f"plugins.jwt.providers.{name}.jwks.ca"
            raise ValueError(f"{where}: cannot be used as a CA file ({type(e).__name__})") from None

        async def keys(kid: str | None, alg: str) -> list[Key]:
            return await jwks.candidates(kid, alg)
    else:
        static = StaticKeys(provider.keys, f"plugins.jwt.providers.{name}")

        async def keys(kid: str | None, alg: str) -> list[Key]:
            return static.candidates(kid, alg)

    verifier = Verifier(name, provider, keys)
    mapping = tuple(provider.claims_to_headers.items())
    forged = claim_headers(cfg)
    required = tuple(policy.require.items())
    drop_token = not provider.forward_token and provider.token.cookie is None
    token_header = provider.token.header

    async def jwt_filter(exchange: Exchange, call_next: Handler) -> Response:
        headers = exchange.headers
        for header in forged:  # before anything can fail: no forged copy ever gets through
            headers.remove(header)
        claims = await verifier.verify(token_from(headers, provider, name))
        for claim, values in required:
            if not _contains(claims.get(claim), values):
                raise InsufficientScope(name, claim, " ".join(values) if claim in _SCOPES else None)
        for claim, header in mapping:
            value = header_value(claims.get(claim))
            if value is not None:
                headers.set(header, value)
        if drop_token:
            headers.remove(token_header)
        exchange.stash[CLAIMS] = claims
        return await call_next(exchange)

    return jwt_filter


#: claims whose required values are named in the 403's ``scope`` parameter (RFC 6750 3.1)
_SCOPES = frozenset({"scope", "scp"})
