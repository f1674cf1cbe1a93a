"""The section refused where it is unsafe or inconsistent, at its key path, never echoing a
secret."""

from __future__ import annotations

from typing import Any

import pytest
from jwt_routes import provider
from pydantic import ValidationError

from sidecar_jwt import JwtConfig


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        JwtConfig.model_validate(data)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in caught.value.errors()]


def one(**over: Any) -> dict[str, Any]:
    return {"providers": {"main": provider(**over)}}


def test_alg_none_is_refused_in_any_case() -> None:
    """'none' can never be allowed, however it is spelt."""
    for spelling in ("none", "None", "NONE"):
        ((where, why),) = problems(one(algorithms=["RS256", spelling]))
        assert where == "providers.main.algorithms" and "never accepted" in why


def test_keys_must_come_from_exactly_one_place() -> None:
    """A provider has a JWKS or static keys, never both nor neither."""
    assert "exactly one" in problems(one(jwks=None))[0][1]
    both = one(keys=[{"alg": "RS256", "key": {"file": "/k.pem"}}])
    assert "exactly one" in problems(both)[0][1]


def test_hs_algorithms_need_static_keys() -> None:
    """A JWKS never supplies shared secrets: HS* with a JWKS is refused."""
    assert "HS* algorithms need static keys" in problems(one(algorithms=["HS256"]))[0][1]


def test_a_secret_written_inline_is_refused_without_repeating_it() -> None:
    """keys[i].key is a reference ({env}/{file}); an inline value is refused, not echoed."""
    data = one(jwks=None, algorithms=["HS256"], keys=[{"alg": "HS256", "key": "hunter2-secret"}])
    found = problems(data)
    assert found[0][0] == "providers.main.keys.0.key"
    assert all("hunter2" not in why for _, why in found)


def test_unknown_keys_and_providers_are_named() -> None:
    """A misspelt option and a policy naming no provider are refused at their paths."""
    ((where, _),) = problems(one(leway="30s"))
    assert where == "providers.main.leway"
    ((_, why),) = problems({**one(), "egress": {"upstreams": {"shop": {"provider": "mian"}}}})
    assert "egress.upstreams.shop names the provider mian" in why


def test_claim_headers_cannot_steer_the_proxy() -> None:
    """Claims cannot be mapped to Host, Content-Length, Authorization... or twice to one."""
    for header in ("Host", "content-length", "Authorization", "transfer-encoding"):
        assert "cannot carry a claim" in problems(one(claims_to_headers={"sub": header}))[0][1]
    assert "two claims" in problems(one(claims_to_headers={"a": "x-a", "b": "X-A"}))[0][1]
    assert problems(one(claims_to_headers={"sub": "x bad"}))[0][0].startswith(
        "providers.main.claims_to_headers"
    )


def test_audiences_and_issuer_are_required() -> None:
    """A provider without an audience would accept tokens minted for any service."""
    data = one()
    del data["providers"]["main"]["audiences"]
    assert ("providers.main.audiences", "Field required") in problems(data)
    assert problems(one(audiences=[]))[0][0] == "providers.main.audiences"


def test_provider_names_are_plain_and_sizes_take_units() -> None:
    """A provider's name (the realm) cannot carry a quote; max_token_bytes takes KiB."""
    assert "provider's name" in problems({"providers": {'a"b': provider()}})[0][1]
    cfg = JwtConfig.model_validate(one(max_token_bytes="4KiB", leeway="1m"))  # noqa: S106
    assert (cfg.providers["main"].max_token_bytes, cfg.providers["main"].leeway) == (4096, 60.0)
