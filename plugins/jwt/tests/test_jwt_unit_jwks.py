"""The JWKS cache, no sockets: rotation on an unknown kid, the refetch rate limit under a flood
of random kids, stale keys served within a bound while the endpoint is down."""

from __future__ import annotations

import asyncio
import json

import pytest
from jwt_signer import Keys

from sidecar_jwt.config import JwksConfig
from sidecar_jwt.errors import KeysUnavailable
from sidecar_jwt.jwks import MAX_ENDPOINTS, JwksKeys, KeyStore


class Endpoint:
    """A JWKS endpoint in memory and a clock the test moves."""

    def __init__(self, keys: Keys) -> None:
        self.document: dict[str, object] | None = keys.jwks()
        self.calls = 0
        self.now = 1000.0

    async def fetch(self, cfg: JwksConfig) -> bytes:
        self.calls += 1
        await asyncio.sleep(0)  # a real fetch yields: concurrent callers must share it
        if self.document is None:
            raise ConnectionRefusedError("down")
        return json.dumps(self.document).encode()


def cache(endpoint: Endpoint, **over: object) -> JwksKeys:
    cfg = JwksConfig.model_validate({"url": "http://127.0.0.1:9/jwks"} | over)
    return JwksKeys(cfg, endpoint.fetch, clock=lambda: endpoint.now)


async def test_an_unknown_kid_refetches_once_and_finds_the_rotated_key(
    keys: Keys, next_keys: Keys
) -> None:
    """After the issuer rotates, the first token with the new kid refetches and passes."""
    endpoint = Endpoint(keys)
    jwks = cache(endpoint)
    assert [k.kid for k in await jwks.candidates("rsa-1", "RS256")] == ["rsa-1"]
    endpoint.document = next_keys.jwks()
    endpoint.now += 31  # past min_refetch_interval
    assert [k.kid for k in await jwks.candidates("rsa-2", "RS256")] == ["rsa-2"]
    assert endpoint.calls == 2


async def test_a_flood_of_random_kids_costs_one_fetch_per_interval(keys: Keys) -> None:
    """Ten thousand unknown kids, concurrently, within one interval: one fetch beyond the
    first load, and every one of them gets no key."""
    endpoint = Endpoint(keys)
    jwks = cache(endpoint, min_refetch_interval="30s")
    await jwks.candidates("rsa-1", "RS256")
    endpoint.now += 31
    found = await asyncio.gather(*(jwks.candidates(f"kid-{i}", "RS256") for i in range(10000)))
    assert all(f == [] for f in found)
    assert endpoint.calls == 2
    endpoint.now += 10
    await jwks.candidates("still-unknown", "RS256")
    assert endpoint.calls == 2


async def test_concurrent_first_calls_share_one_fetch(keys: Keys) -> None:
    """A burst of calls at start-up waits for one fetch rather than starting many."""
    endpoint = Endpoint(keys)
    jwks = cache(endpoint)
    found = await asyncio.gather(*(jwks.candidates("ec-1", "ES256") for _ in range(50)))
    assert all(len(f) == 1 for f in found) and endpoint.calls == 1


async def test_stale_keys_are_served_within_max_stale_then_refused(keys: Keys) -> None:
    """With the endpoint down, the held keys serve until refresh_interval + max_stale, then
    calls get 503 jwt_keys_unavailable."""
    endpoint = Endpoint(keys)
    jwks = cache(endpoint, refresh_interval="10m", max_stale="1h", min_refetch_interval="30s")
    await jwks.candidates("rsa-1", "RS256")
    endpoint.document = None
    endpoint.now += 600 + 1800  # expired, within the stale allowance
    assert len(await jwks.candidates("rsa-1", "RS256")) == 1
    endpoint.now += 1801  # past it
    with pytest.raises(KeysUnavailable) as caught:
        await jwks.candidates("rsa-1", "RS256")
    assert (caught.value.status, caught.value.code) == (503, "jwt_keys_unavailable")


async def test_an_endpoint_down_from_the_start_is_asked_once_per_interval(
    keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """Never fetched and down: 503 at once, and the endpoint is not asked again until the
    interval passed. The failure is logged with the host only, never the URL's credentials."""
    endpoint = Endpoint(keys)
    endpoint.document = None
    jwks = cache(endpoint, url="https://user:pw@idp.test:8443/jwks?key=secret")
    for _ in range(20):
        with pytest.raises(KeysUnavailable):
            await jwks.candidates("rsa-1", "RS256")
    assert endpoint.calls == 1
    (record,) = [r for r in caplog.records if r.name == "sidecar.plugin.jwt"]
    assert record.fields == {"jwks_host": "idp.test:8443", "error": "ConnectionRefusedError"}
    assert "secret" not in record.getMessage() and "pw" not in str(record.fields)
    endpoint.document = keys.jwks()
    endpoint.now += 31
    assert len(await jwks.candidates("rsa-1", "RS256")) == 1


async def test_refresh_interval_picks_up_new_keys_without_an_unknown_kid(
    keys: Keys, next_keys: Keys
) -> None:
    """Keys removed from the JWKS stop verifying once the cache refreshed, in the background."""
    endpoint = Endpoint(keys)
    jwks = cache(endpoint, refresh_interval="1m")
    await jwks.candidates("rsa-1", "RS256")
    endpoint.document = next_keys.jwks()
    endpoint.now += 61
    # the keys held serve while the refresh runs in the background...
    assert [k.kid for k in await jwks.candidates("rsa-1", "RS256")] == ["rsa-1"]
    for _ in range(100):  # ...which ends within a few loop turns (the fetch is in memory)
        if jwks.fetched_at == endpoint.now:
            break
        await asyncio.sleep(0)
    assert await jwks.candidates("rsa-1", "RS256") == []
    assert endpoint.calls == 2


async def test_jwks_entries_that_are_secrets_or_private_are_not_trusted(keys: Keys) -> None:
    """oct keys are dropped, use=enc too; a private RSA entry is used by its public half."""
    endpoint = Endpoint(keys)
    private = keys.rsa.as_dict(private=True)
    endpoint.document = {
        "keys": [
            keys.oct.as_dict(private=True),
            {**keys.ec.as_dict(private=False), "use": "enc"},
            private,
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not a key",
        ]
    }
    jwks = cache(endpoint)
    assert await jwks.candidates("hs-1", "HS256") == []
    assert await jwks.candidates("ec-1", "ES256") == []
    (rsa,) = await jwks.candidates("rsa-1", "RS256")
    assert not hasattr(rsa.material, "private_bytes")


def test_the_store_keeps_one_cache_per_endpoint_settings_bounded() -> None:
    """Routes (and reloads) with equal JWKS settings share one cache; the store holds at most
    MAX_ENDPOINTS caches, the least recently used dropped first."""
    store = KeyStore()
    first = JwksConfig.model_validate({"url": "http://127.0.0.1:9/jwks"})
    again = JwksConfig.model_validate({"url": "http://127.0.0.1:9/jwks"})
    assert store.jwks(first) is store.jwks(again)
    for i in range(MAX_ENDPOINTS + 10):
        store.jwks(JwksConfig.model_validate({"url": f"http://127.0.0.1:9/jwks/{i}"}))
    assert len(store._caches) == MAX_ENDPOINTS  # noqa: SLF001 - the bound itself
    assert first not in store._caches  # noqa: SLF001
