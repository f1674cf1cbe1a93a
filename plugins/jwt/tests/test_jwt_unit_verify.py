"""Tokens checked by the filter, no sockets: every algorithm, every claim check, and the
forgeries (alg none, algorithm confusion, kid injection, oversized and malformed tokens)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from jwt_routes import MemoryStore, built, context, section
from jwt_signer import AUDIENCE, SECRET, Keys, b64, claims, hs256_with, sign, unsigned
from sidecar import Filter, SidecarError
from sidecar.testing import make_exchange, responder


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def refusal(jwt_filter: Filter, headers: Any) -> SidecarError:
    seen: list[Any] = []
    with pytest.raises(SidecarError) as caught:
        await jwt_filter(make_exchange(headers=headers), responder(200, seen=seen))
    assert seen == []  # a refused call never reaches the upstream
    return caught.value


def jwks_filter(keys: Keys, **over: Any) -> tuple[Filter, MemoryStore]:
    store = MemoryStore(keys.jwks())
    return built(context(section(**over), store)), store


@pytest.mark.parametrize(("which", "alg"), [("rsa", "RS256"), ("ec", "ES256"), ("okp", "EdDSA")])
async def test_tokens_signed_by_the_issuers_jwks_keys_pass(
    keys: Keys, which: str, alg: str
) -> None:
    """A token signed with any JWKS key of an allowed algorithm reaches the upstream."""
    jwt_filter, _ = jwks_filter(keys)
    token = sign(getattr(keys, which), alg, claims())
    response = await jwt_filter(make_exchange(headers=bearer(token)), responder(200))
    assert response.status == 200


async def test_hs256_with_a_static_secret_by_reference(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HS256 token verifies with a shared secret read from the environment, never inline."""
    monkeypatch.setenv("JWT_TEST_SECRET", SECRET)
    static = [{"kid": "hs-1", "alg": "HS256", "key": {"env": "JWT_TEST_SECRET"}}]
    jwt_filter = built(context(section(jwks=None, keys=static, algorithms=["HS256"])))
    ok = await jwt_filter(
        make_exchange(headers=bearer(sign(keys.oct, "HS256", claims()))), responder(200)
    )
    assert ok.status == 200
    wrong = hs256_with(b"another-secret-another-secret-!!", claims(), kid="hs-1")
    assert (await refusal(jwt_filter, bearer(wrong))).code == "jwt_invalid"


async def test_static_pem_keys_from_files(keys: Keys, tmp_path: Path) -> None:
    """RS256 and ES256 tokens verify with PEM public keys given as files."""
    (tmp_path / "rsa.pem").write_text(keys.rsa_pem())
    (tmp_path / "ec.pem").write_text(keys.ec_pem())
    static = [
        {"kid": "rsa-1", "alg": "RS256", "key": {"file": str(tmp_path / "rsa.pem")}},
        {"alg": "ES256", "key": {"file": str(tmp_path / "ec.pem")}},
    ]
    jwt_filter = built(context(section(jwks=None, keys=static)))
    for token in (sign(keys.rsa, "RS256", claims()), sign(keys.ec, "ES256", claims(), kid=None)):
        assert (
            await jwt_filter(make_exchange(headers=bearer(token)), responder(200))
        ).status == 200


async def test_refusals_are_401_invalid_token_with_the_rfc6750_challenge(keys: Keys) -> None:
    """Expired, not-yet-valid, wrong audience or issuer, missing exp: 401 with
    WWW-Authenticate: Bearer error="invalid_token", and nothing of the token in the answer."""
    jwt_filter, _ = jwks_filter(keys, leeway=0)
    now = int(time.time())
    cases = {
        "expired": claims(exp=now - 10, iat=now - 100),
        "not valid yet": claims(nbf=now + 600),
        "another audience": claims(aud="api://other"),
        "another issuer": claims(iss="https://evil.test"),
        "no exp": claims(exp=None),
    }
    for what, body in cases.items():
        error = await refusal(jwt_filter, bearer(sign(keys.rsa, "RS256", body)))
        assert (error.status, error.code) == (401, "jwt_invalid"), what
        challenge = dict(error.headers)["www-authenticate"]
        assert challenge.startswith('Bearer realm="main", error="invalid_token"'), what
        assert "user-1" not in str(error) + challenge


async def test_a_missing_token_gets_a_bare_challenge(keys: Keys) -> None:
    """No token (or another scheme): 401 jwt_missing, a challenge without an error code."""
    jwt_filter, _ = jwks_filter(keys)
    for headers in ({}, {"authorization": "Basic dXNlcjpwYXNz"}):
        error = await refusal(jwt_filter, headers)
        assert (error.status, error.code) == (401, "jwt_missing")
        assert dict(error.headers)["www-authenticate"] == 'Bearer realm="main"'


async def test_two_tokens_are_an_invalid_request(keys: Keys) -> None:
    """Two Authorization headers: 400 invalid_request, neither is tried."""
    jwt_filter, _ = jwks_filter(keys)
    token = sign(keys.rsa, "RS256", claims())
    error = await refusal(jwt_filter, [("authorization", f"Bearer {token}")] * 2)
    assert (error.status, error.code) == (400, "jwt_invalid_request")


async def test_alg_none_is_refused_even_when_listed_nowhere(keys: Keys) -> None:
    """An unsigned token (alg none, any case) is refused without a key lookup."""
    jwt_filter, store = jwks_filter(keys)
    for alg in ("none", "None", "NONE"):
        error = await refusal(jwt_filter, bearer(unsigned(claims(), alg=alg, kid="rsa-1")))
        assert error.code == "jwt_invalid"
    assert store.fetches == 0


async def test_hs256_signed_with_the_rsa_public_key_is_refused(keys: Keys, tmp_path: Path) -> None:
    """Algorithm confusion: HS256 keyed with the RSA public key's PEM never verifies, even
    with HS256 allowed, because the RSA key is only ever used for RS*/PS*."""
    pem = keys.rsa_pem().encode()
    (tmp_path / "rsa.pem").write_text(keys.rsa_pem())
    static = [{"kid": "rsa-1", "alg": "RS256", "key": {"file": str(tmp_path / "rsa.pem")}}]
    jwt_filter = built(context(section(jwks=None, keys=static, algorithms=["RS256", "HS256"])))
    for kid in ("rsa-1", None):
        forged = hs256_with(pem, claims(), **({"kid": kid} if kid else {}))
        assert (await refusal(jwt_filter, bearer(forged))).code == "jwt_invalid"
    jwks, _ = jwks_filter(keys)  # a JWKS provider: HS256 not even allowed
    assert (await refusal(jwks, bearer(hs256_with(pem, claims(), kid="rsa-1")))).status == 401


async def test_a_key_is_never_used_for_another_type(keys: Keys) -> None:
    """An ES256 token naming the RSA key's kid is refused: the key's type must match."""
    jwt_filter, _ = jwks_filter(keys)
    token = sign(keys.ec, "ES256", claims(), kid="rsa-1")
    assert (await refusal(jwt_filter, bearer(token))).code == "jwt_invalid"


async def test_injected_kids_are_refused_without_a_fetch(keys: Keys) -> None:
    """A kid that is a path, a URL, huge or not a string is refused before any JWKS fetch."""
    jwt_filter, store = jwks_filter(keys)
    await jwt_filter(make_exchange(headers=bearer(sign(keys.rsa, "RS256", claims()))), responder())
    fetched = store.fetches
    for kid in ("../../../../etc/passwd", "http://evil.test/k", "k" * 5000, "a\r\nb", 7, ["x"]):
        # joserfc refuses to write a kid that is not a string: those tokens are made by hand
        token = hs256_with(b"any", claims(), alg="RS256", kid=kid)
        assert (await refusal(jwt_filter, bearer(token))).code == "jwt_invalid"
    assert store.fetches == fetched


async def test_oversized_and_malformed_tokens_are_refused(keys: Keys) -> None:
    """Tokens past max_token_bytes, bad base64, JSON that is not an object, five parts (JWE),
    a jku header pointing elsewhere: each a 401, none reaching a key."""
    jwt_filter, store = jwks_filter(keys, max_token_bytes=2048)
    good = sign(keys.rsa, "RS256", claims())
    head, body, sig = good.split(".")
    cases = [
        sign(keys.rsa, "RS256", claims(pad="x" * 4000)),
        f"{head}.{body}.{sig}!!",
        f"{head}=.{body}.{sig}",
        f"{b64(b'[1,2]')}.{body}.{sig}",
        f"{b64(b'not json')}.{body}.{sig}",
        f"{head}.{b64(b'not json')}.{sig}",
        f"{head}.{body}.{sig}.{sig}.{sig}",
        "",
        "....",
    ]
    for token in cases:
        assert (await refusal(jwt_filter, bearer(token))).status == 401
    # only a well-formed header with an allowed alg ever loads the keys (once)
    assert store.fetches == 1
    jku = sign(keys.rsa, "RS256", claims(), jku="http://evil.test/jwks")
    assert (await jwt_filter(make_exchange(headers=bearer(jku)), responder())).status == 200


async def test_tampered_payload_fails_the_signature(keys: Keys) -> None:
    """A token whose claims were changed after signing is refused."""
    jwt_filter, _ = jwks_filter(keys)
    head, _, sig = sign(keys.rsa, "RS256", claims()).split(".")
    forged = json.dumps(claims(sub="admin")).encode()
    tampered = f"{head}.{b64(forged)}.{sig}"
    assert (await refusal(jwt_filter, bearer(tampered))).code == "jwt_invalid"


async def test_clock_skew_is_allowed_within_leeway(keys: Keys) -> None:
    """A token expired 10 s ago passes with a 30 s leeway and fails with none."""
    now = int(time.time())
    token = sign(keys.rsa, "RS256", claims(exp=now - 10, iat=now - 60))
    lenient, _ = jwks_filter(keys, leeway="30s")
    strict, _ = jwks_filter(keys, leeway=0)
    assert (await lenient(make_exchange(headers=bearer(token)), responder())).status == 200
    assert (await refusal(strict, bearer(token))).code == "jwt_invalid"


async def test_required_claims_are_enforced(keys: Keys) -> None:
    """A token lacking a configured required claim is refused."""
    jwt_filter, _ = jwks_filter(keys, required_claims=["exp", "sub", "tenant"])
    assert (await refusal(jwt_filter, bearer(sign(keys.rsa, "RS256", claims())))).status == 401
    ok = sign(keys.rsa, "RS256", claims(tenant="acme"))
    assert (await jwt_filter(make_exchange(headers=bearer(ok)), responder())).status == 200


async def test_audience_may_be_a_list(keys: Keys) -> None:
    """A token whose aud list names the configured audience passes."""
    jwt_filter, _ = jwks_filter(keys)
    token = sign(keys.rsa, "RS256", claims(aud=["api://other", AUDIENCE]))
    assert (await jwt_filter(make_exchange(headers=bearer(token)), responder())).status == 200


@pytest.mark.parametrize(
    "payload",
    [
        '{"exp": 1e999}',
        '{"exp": NaN}',
        '{"iat": -1e999, "exp": 1}',
        '{"exp": ' + "9" * 5000 + "}",
        '{"x": ' + "[" * 2500 + "]" * 2500 + ', "exp": 1}',
        '{"exp": "tomorrow"}',
    ],
)
async def test_hostile_json_in_a_correctly_signed_token_is_a_401_not_a_crash(
    payload: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Infinities, huge integers, deep nesting and wrong types, even validly signed, are
    refused as 401: the parser never turns them into a 500."""
    monkeypatch.setenv("JWT_TEST_SECRET", SECRET)
    static = [{"alg": "HS256", "key": {"env": "JWT_TEST_SECRET"}}]
    jwt_filter = built(context(section(jwks=None, keys=static, algorithms=["HS256"])))
    head = b64(b'{"alg":"HS256"}')
    body = payload.replace("{", '{"iss": "https://issuer.test", "aud": "api://shop", ', 1)
    signing = f"{head}.{b64(body.encode())}"
    mac = hmac.new(SECRET.encode(), signing.encode(), hashlib.sha256).digest()
    error = await refusal(jwt_filter, bearer(f"{signing}.{b64(mac)}"))
    assert (error.status, error.code) == (401, "jwt_invalid")
