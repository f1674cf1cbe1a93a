"""Route contexts and filters for the unit tests: no sockets, the JWKS answered in memory."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from jwt_signer import AUDIENCE, ISSUER
from sidecar import Filter, RouteContext
from sidecar.testing import make_route_context, on_front

from sidecar_jwt import NAME, STORE, JwtConfig, make_filter
from sidecar_jwt.config import JwksConfig
from sidecar_jwt.jwks import KeyStore


class MemoryStore(KeyStore):
    """A KeyStore whose JWKS is a document in memory; ``fetches`` counts what it was asked."""

    def __init__(self, document: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.document = document
        self.fetches = 0

    async def fetch(self, cfg: JwksConfig) -> bytes:
        self.fetches += 1
        if self.document is None:
            raise ConnectionRefusedError("the JWKS endpoint is down")
        return json.dumps(self.document).encode()


def provider(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "algorithms": ["RS256", "ES256", "EdDSA"],
        "jwks": {"url": "http://127.0.0.1:9/jwks"},
    }
    base.update(over)
    return base


def section(**over: Any) -> JwtConfig:
    """A section with provider ``main`` (over: its options) on egress to upstream ``shop``."""
    policy = over.pop("policy", {"provider": "main"})
    return JwtConfig.model_validate(
        {"providers": {"main": provider(**over)}, "egress": {"upstreams": {"shop": policy}}}
    )


def context(cfg: JwtConfig, store: KeyStore | None = None, **changes: Any) -> RouteContext:
    ctx = make_route_context(name="shop")
    resources = {STORE: store} if store is not None else {}
    return dataclasses.replace(ctx, plugin_sections={NAME: cfg}, resources=resources, **changes)


#: an inbound section with the routes the unit tests name (the files are never read here)
INBOUND = {
    "app": "127.0.0.1:8080",
    "tls": {"cert": "/unused/tls.crt", "key": "/unused/tls.key", "ca": "/unused/ca.crt"},
    "allow": [],
    "routes": [
        {"name": name, "match": {"path_prefix": f"/{name}"}, "allow": []}
        for name in ("health", "admin")
    ],
}


def inbound(cfg: JwtConfig, route: str = "inbound", store: KeyStore | None = None) -> RouteContext:
    """A route of the inbound listener, whose routes are ``health``, ``admin`` and ``inbound``."""
    config = make_route_context(name="shop", config={"inbound": INBOUND}).config
    ctx = context(cfg, store, config=config)
    return on_front(ctx, "inbound", route=route, upstream_name="@app")


def built(ctx: RouteContext) -> Filter:
    made = make_filter(ctx)
    assert made is not None
    return made
