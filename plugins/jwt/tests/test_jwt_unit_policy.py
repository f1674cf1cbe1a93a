"""Where the filter applies (inbound routes, egress upstreams and routes), what a route
requires (403 insufficient_scope), and claims copied to headers: sanitised, never forgeable."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jwt_routes import MemoryStore, built, context, inbound, provider, section
from jwt_signer import Keys, claims, sign
from sidecar import ConfigError, SidecarError
from sidecar.testing import make_exchange, make_route_context, on_front, responder

import sidecar_jwt
from sidecar_jwt import JwtConfig, make_filter
from sidecar_jwt.filter import header_value, policy_for


def bearer(token: str, **more: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **more}


def test_no_section_and_unlisted_routes_cost_nothing() -> None:
    """Without a policy for the route the factory returns None: the route pays nothing."""
    assert make_filter(make_route_context(plugins=[sidecar_jwt])) is None
    cfg = section()
    assert make_filter(dataclasses.replace(context(cfg), upstream_name="other")) is None
    assert make_filter(inbound(cfg)) is None  # no inbound policy: inbound is not checked


async def test_inbound_routes_take_their_own_policy_or_none(keys: Keys) -> None:
    """Every inbound route is checked unless its entry says null; a route's entry replaces
    the listener-wide requirements."""
    cfg = JwtConfig.model_validate(
        {
            "providers": {"main": provider()},
            "inbound": {
                "provider": "main",
                "routes": {
                    "health": None,
                    "admin": {"provider": "main", "require": {"roles": ["admin"]}},
                },
            },
        }
    )
    store = MemoryStore(keys.jwks())
    assert make_filter(inbound(cfg, "health", store)) is None  # no claim headers to strip
    default, admin = built(inbound(cfg, "inbound", store)), built(inbound(cfg, "admin", store))
    token = sign(keys.rsa, "RS256", claims(roles=["viewer"]))
    assert (await default(make_exchange(headers=bearer(token)), responder())).status == 200
    with pytest.raises(SidecarError) as caught:
        await admin(make_exchange(headers=bearer(token)), responder())
    assert (caught.value.status, caught.value.code) == (403, "jwt_insufficient_scope")
    boss = sign(keys.rsa, "RS256", claims(roles=["viewer", "admin"]))
    assert (await admin(make_exchange(headers=bearer(boss)), responder())).status == 200


async def test_missing_scope_is_403_with_the_scope_named(keys: Keys) -> None:
    """A valid token without a required scope: 403, Bearer error="insufficient_scope" naming
    the scope the route needs."""
    jwt_filter = built(
        context(
            section(policy={"provider": "main", "require": {"scope": ["orders.write"]}}),
            MemoryStore(keys.jwks()),
        )
    )
    with pytest.raises(SidecarError) as caught:
        await jwt_filter(
            make_exchange(headers=bearer(sign(keys.rsa, "RS256", claims()))), responder()
        )
    assert caught.value.status == 403
    assert dict(caught.value.headers)["www-authenticate"] == (
        'Bearer realm="main", error="insufficient_scope", scope="orders.write"'
    )
    token = sign(keys.rsa, "RS256", claims(scope="orders.read orders.write"))
    assert (await jwt_filter(make_exchange(headers=bearer(token)), responder())).status == 200


async def test_claims_reach_the_app_as_headers_and_forged_copies_never_do(keys: Keys) -> None:
    """Mapped claims are set as headers; the caller's own copies (of every provider's mapped
    headers) are removed first, also when the token lacks the claim or the call is refused."""
    mapped = {"sub": "X-User", "email": "x-user-email", "groups": "x-g"}
    cfg = JwtConfig.model_validate(
        {
            "providers": {
                "main": provider(claims_to_headers=mapped),
                "other": provider(claims_to_headers={"tenant": "x-tenant"}),  # not this route's
            },
            "egress": {"upstreams": {"shop": {"provider": "main"}}},
        }
    )
    jwt_filter = built(context(cfg, MemoryStore(keys.jwks())))
    seen: list[Any] = []
    forged = {"x-user": "admin", "x-user-email": "boss@corp", "x-g": "root", "x-tenant": "t"}
    token = sign(keys.rsa, "RS256", claims(groups=["a", "b"]))
    await jwt_filter(make_exchange(headers=bearer(token, **forged)), responder(seen=seen))
    sent = seen[0].headers
    assert sent.get_all("x-user") == ["user-1"] and sent.get_all("x-g") == ["a,b"]
    assert "x-user-email" not in sent  # no such claim: no header, and not the forged one
    assert "x-tenant" not in sent  # mapped by another provider: removed here too
    refused = make_exchange(headers=bearer("garbage", **forged))
    with pytest.raises(SidecarError):
        await jwt_filter(refused, responder())
    assert all(h not in refused.headers for h in forged)


def test_header_values_are_sanitised() -> None:
    """CR/LF, NUL, non-ASCII and % are percent-encoded; objects give no header; long values
    are cut."""
    assert header_value("a\r\nx-admin: 1") == "a%0D%0Ax-admin: 1"
    assert header_value("nul\x00é%") == "nul%00%C3%A9%25"
    assert header_value({"role": "admin"}) is None and header_value(None) is None
    assert header_value(True) == "true" and header_value(42) == "42"
    assert len(header_value("x" * 5000) or "") == 1024


async def test_token_from_a_cookie_and_dropped_when_not_forwarded(keys: Keys) -> None:
    """token.cookie reads the cookie; forward_token false removes the Authorization header."""
    store = MemoryStore(keys.jwks())
    token = sign(keys.rsa, "RS256", claims())
    cookie = built(context(section(token={"cookie": "session"}), store))
    seen: list[Any] = []
    await cookie(make_exchange(headers={"cookie": f"a=1; session={token}"}), responder(seen=seen))
    assert len(seen) == 1
    dropping = built(context(section(forward_token=False), store))
    seen.clear()
    await dropping(make_exchange(headers=bearer(token)), responder(seen=seen))
    assert "authorization" not in seen[0].headers


async def test_egress_routes_override_upstreams(keys: Keys) -> None:
    """An explicit route's egress policy replaces the upstream's."""
    cfg = JwtConfig.model_validate(
        {
            "providers": {"main": provider()},
            "egress": {
                "upstreams": {"shop": {"provider": "main"}},
                "routes": {"orders": {"provider": "main", "require": {"scope": ["x"]}}},
            },
        }
    )
    routes = [{"name": "orders", "match": {"path_prefix": "/orders"}, "upstream": "shop"}]
    ctx = dataclasses.replace(
        context(cfg), config=make_route_context(name="shop", config={"routes": routes}).config
    )
    explicit = dataclasses.replace(ctx, route="orders", route_config=ctx.config.routes[0])
    assert policy_for(explicit, cfg) == cfg.egress.routes["orders"]
    assert policy_for(ctx, cfg) == cfg.egress.upstreams["shop"]  # the implicit /shop/ route


def test_the_filter_is_placed_right_after_the_peer_allow_list(
    plugin_host: Callable[..., Any],
) -> None:
    """Registered as `jwt` right after peer_allow (admission): before rate limits, retries and
    credentials, so a call without a valid token costs none of them."""
    registries = plugin_host(sidecar_jwt).registries
    assert registries.config["jwt"] is JwtConfig
    names = [r.name for r in registries.filters.ordered()]
    assert names.index("peer_allow") < names.index("jwt") < names.index("rate_limit")
    assert names.index("jwt") < names.index("retry") < names.index("auth")


async def test_refusals_on_the_grpc_port_are_unauthenticated(keys: Keys) -> None:
    """On the gRPC port an upstream's policy applies too; refusals carry gRPC codes 16 and 7."""
    cfg = section(policy={"provider": "main", "require": {"scope": ["admin"]}})
    jwt_filter = built(on_front(context(cfg, MemoryStore(keys.jwks())), "grpc"))
    with pytest.raises(SidecarError) as missing:
        await jwt_filter(make_exchange(headers={}), responder())
    with pytest.raises(SidecarError) as scope:
        token = sign(keys.rsa, "RS256", claims())
        await jwt_filter(make_exchange(headers=bearer(token)), responder())
    assert (missing.value.grpc_code, scope.value.grpc_code) == (16, 7)


def test_a_policy_for_a_route_or_upstream_that_does_not_exist_stops_start_up() -> None:
    """A misspelt route name would silently leave that route with the weaker default policy:
    the factory refuses it, naming the key."""
    cfg = JwtConfig.model_validate(
        {
            "providers": {"main": provider()},
            "inbound": {"provider": "main", "routes": {"admn": None}},
        }
    )
    with pytest.raises(ConfigError, match=r"plugins\.jwt\.inbound\.routes\.admn: no such route"):
        make_filter(inbound(cfg))
    typo = section(policy={"provider": "main"})
    typo = typo.model_copy(
        update={
            "egress": typo.egress.model_copy(
                update={"routes": {"x": typo.egress.upstreams["shop"]}}
            )
        }
    )
    with pytest.raises(ConfigError, match=r"plugins\.jwt\.egress\.routes\.x: no such route"):
        make_filter(context(typo))


async def test_unchecked_inbound_routes_still_remove_forged_claim_headers() -> None:
    """An inbound route with its check off (null) still removes the mapped claim headers a
    peer sent: the app can trust x-user whatever the route."""
    cfg = JwtConfig.model_validate(
        {
            "providers": {"main": provider(claims_to_headers={"sub": "x-user"})},
            "inbound": {"provider": "main", "routes": {"health": None}},
        }
    )
    seen: list[Any] = []
    strip = built(inbound(cfg, "health"))
    await strip(make_exchange(headers={"x-user": "admin", "x-other": "1"}), responder(seen=seen))
    assert "x-user" not in seen[0].headers and seen[0].headers.get("x-other") == "1"


def test_an_unusable_jwks_ca_file_stops_start_up_naming_it(tmp_path: Path) -> None:
    """jwks.ca that is missing or not PEM stops start-up at its key path."""
    (tmp_path / "junk.pem").write_text("not a certificate")
    for ca in (str(tmp_path / "missing.pem"), str(tmp_path / "junk.pem")):
        cfg = section(jwks={"url": "https://127.0.0.1:9/jwks", "ca": ca})
        with pytest.raises(ValueError, match=r"plugins\.jwt\.providers\.main\.jwks\.ca: cannot"):
            make_filter(context(cfg, MemoryStore()))
