"""verify_hmac with scheme standard-webhooks: calls signed by the independent standardwebhooks
library pass once; every other call is refused with its reason; secrets rotate; replays are
recognised by webhook-id, in this process or in a shared store that fails closed."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from sidecar.auth import verify
from sidecar.auth.replays import ReplayCache, SharedReplays
from sidecar.auth.verify import make_verify_hmac
from sidecar.chain import Filter
from sidecar.config.loader import parse_config
from sidecar.config.policies import VerifyHmacPolicy
from sidecar.config.secrets import SecretValue
from sidecar.errors import (
    BodyTooLarge,
    ConfigError,
    ReplayCheckUnavailable,
    SignatureInvalid,
)
from sidecar.exchange import Exchange
from sidecar.testing import make_exchange, responder

NOW = 1_700_000_000
BODY = b'{"type": "invoice.paid", "data": {"id": 7}}'


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


OLD, NEW = new_secret(), new_secret()


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WH_OLD", OLD)
    monkeypatch.setenv("WH_NEW", NEW)


def headers(
    secret: str = OLD, msg_id: str = "msg_1", body: bytes = BODY, ts: int = NOW
) -> dict[str, str]:
    """Standard Webhooks headers made by the standardwebhooks library."""
    stamp = datetime.fromtimestamp(ts, UTC)
    signature = Webhook(secret).sign(msg_id, stamp, body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def call(hdrs: dict[str, str], body: bytes = BODY) -> Exchange:
    return make_exchange("POST", "/hooks/billing", hdrs, body)


def policy(**settings: Any) -> VerifyHmacPolicy:
    settings.setdefault("secrets", [{"env": "WH_OLD"}])
    return VerifyHmacPolicy.model_validate({"scheme": "standard-webhooks", **settings})


def make(
    counts: dict[str, int] | None = None,
    *,
    replay: ReplayCache | SharedReplays | None = None,
    now: float = NOW,
    **settings: Any,
) -> Filter:
    p = policy(**settings)
    values = [SecretValue(ref, where) for where, ref in p.all_secrets]
    counters = {r: (lambda r=r: _bump(counts, r)) for r in verify.REASONS}
    cache = replay if replay is not None else ReplayCache(p.replay_cache)
    return make_verify_hmac(p, values, cache, counters, wall=lambda: now)


def _bump(counts: dict[str, int] | None, reason: str) -> None:
    if counts is not None:
        counts[reason] = counts.get(reason, 0) + 1


async def test_a_call_signed_by_the_library_passes_unchanged() -> None:
    """A Standard Webhooks call reaches the app with its body and headers as sent."""
    seen: list[Exchange] = []
    response = await make()(call(headers()), responder(204, seen=seen))
    assert response.status == 204 and seen[0].body == BODY
    assert seen[0].headers.get("webhook-id") == "msg_1"


def _without(name: str) -> dict[str, str]:
    return {k: v for k, v in headers().items() if k != name}


@pytest.mark.parametrize(
    ("hdrs", "body", "reason"),
    [
        ({}, BODY, "missing"),
        (_without("webhook-id"), BODY, "missing"),
        (_without("webhook-timestamp"), BODY, "missing"),
        (_without("webhook-signature"), BODY, "missing"),
        ({**headers(), "webhook-timestamp": "yesterday"}, BODY, "malformed"),
        ({**headers(), "webhook-signature": "v1a,c2lnbmF0dXJl"}, BODY, "malformed"),
        ({**headers(), "webhook-id": "m" * 257}, BODY, "malformed"),
        ({**headers(), "webhook-signature": " ".join(["v1,x"] * 17)}, BODY, "malformed"),
        (headers(ts=NOW - 301), BODY, "stale"),
        (headers(ts=NOW + 301), BODY, "stale"),
        (headers(secret=new_secret()), BODY, "mismatch"),
        (headers(), b'{"type": "invoice.refunded"}', "mismatch"),
        ({**headers(), "webhook-id": "msg_2"}, BODY, "mismatch"),
        ({**headers(), "webhook-timestamp": str(NOW + 1)}, BODY, "mismatch"),
    ],
    ids=[
        "unsigned",
        "no-id",
        "no-timestamp",
        "no-signature",
        "date",
        "no-v1-entry",
        "id-too-long",
        "too-many-signatures",
        "stale",
        "from-the-future",
        "wrong-secret",
        "tampered-body",
        "tampered-id",
        "tampered-timestamp",
    ],
)
async def test_a_call_that_does_not_verify_is_refused_with_401(
    hdrs: dict[str, str], body: bytes, reason: str
) -> None:
    """Each failed check is a 401 signature_invalid counted under its reason; the app sees
    nothing and no secret is in the answer."""
    counts: dict[str, int] = {}
    seen: list[Exchange] = []
    with pytest.raises(SignatureInvalid) as caught:
        await make(counts)(call(hdrs, body), responder(200, seen=seen))
    assert caught.value.status == 401 and caught.value.code == "signature_invalid"
    assert counts == {reason: 1} and seen == []
    assert OLD not in caught.value.detail and OLD[6:] not in caught.value.detail


async def test_a_webhook_id_is_accepted_once_even_when_signed_again() -> None:
    """A replay is recognised by webhook-id, not by signature: the same event re-signed a
    second later is still refused within the window."""
    counts: dict[str, int] = {}
    cache = ReplayCache(100)
    assert (await make(counts, replay=cache)(call(headers()), responder(200))).status == 200
    for again in (headers(), headers(ts=NOW + 1)):
        with pytest.raises(SignatureInvalid, match="webhook-id was already accepted"):
            await make(counts, replay=cache, now=NOW + 2)(call(again), responder(200))
    assert counts == {"replay": 2}
    # after the window the id is forgotten, and the call is refused as stale anyway
    with pytest.raises(SignatureInvalid):
        await make(counts, replay=cache, now=NOW + 302)(call(headers()), responder(200))
    assert counts["stale"] == 1


async def test_a_forged_call_does_not_use_up_a_genuine_webhook_id() -> None:
    """Ids are remembered only once verified: a forger cannot block the real event."""
    cache = ReplayCache(100)
    f = make(replay=cache)
    with pytest.raises(SignatureInvalid):
        await f(call(headers(secret=new_secret())), responder(200))
    assert cache.describe()["replay_cache"]["entries"] == 0
    assert (await f(call(headers()), responder(200))).status == 200


async def test_svix_branded_headers_are_the_same_scheme() -> None:
    """Svix sends svix-id/-timestamp/-signature unless white-labelled: they verify like the
    webhook-* headers, and the id is the same replay id whichever prefix carried it."""
    svix = {k.replace("webhook-", "svix-"): v for k, v in headers().items()}
    f = make(replay=ReplayCache(10))
    assert (await f(call(svix), responder(200))).status == 200
    with pytest.raises(SignatureInvalid, match="already accepted"):
        await f(call(headers()), responder(200))
    with pytest.raises(SignatureInvalid, match="needs webhook-id"):
        await f(call({"svix-id": "m9", "webhook-signature": "v1,x"}), responder(200))


async def test_either_secret_verifies_during_a_rotation() -> None:
    """With an old and a new secret configured, a call signed by either passes, so does a
    header carrying several signatures; a secret removed from the list no longer does."""
    both = make(secrets=[{"env": "WH_OLD"}, {"env": "WH_NEW"}])
    for n, secret in enumerate((OLD, NEW)):
        assert (await both(call(headers(secret, f"m{n}")), responder(200))).status == 200
    other = headers(new_secret(), "m2")["webhook-signature"]
    signed = headers(NEW, "m2")
    mixed = {**signed, "webhook-signature": f"{other} {signed['webhook-signature']}"}
    assert (await both(call(mixed), responder(200))).status == 200
    with pytest.raises(SignatureInvalid):
        await make(secrets=[{"env": "WH_NEW"}])(call(headers(OLD, "m3")), responder(200))


async def test_every_signature_is_compared_with_every_secret_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """hmac.compare_digest on bytes for each (secret, entry) pair, even after a match: the
    time taken does not tell which one matched."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(verify.hmac, "compare_digest", recording)
    two = f"{headers(OLD)['webhook-signature']} {headers(NEW)['webhook-signature']}"
    f = make(secrets=[{"env": "WH_OLD"}, {"env": "WH_NEW"}])
    await f(call({**headers(), "webhook-signature": two}), responder(200))
    assert len(calls) == 4 and all(isinstance(a, bytes) for a, _ in calls)


async def test_a_body_over_max_body_is_refused_with_413() -> None:
    """The body is verified whole, so its size is bounded."""
    with pytest.raises(BodyTooLarge):
        await make(max_body="8B")(call(headers(body=b"x" * 9), b"x" * 9), responder(200))


class FakeRedis:
    """Stands in for the redis backend's ``claim`` (SET NX PX): no sockets in unit tests."""

    name = "shared"

    def __init__(self, *, answer: str = "ok") -> None:
        self.answer = answer
        self.keys: dict[str, float] = {}
        self.config = type("Config", (), {"timeout": 0.05})()

    async def claim(self, key: str, ttl: float) -> bool:
        if self.answer == "down":
            raise ConnectionError("refused")
        if self.answer == "slow":
            await asyncio.sleep(10)
        if key in self.keys:
            return False
        self.keys[key] = ttl
        return True


def shared(fake: FakeRedis) -> SharedReplays:
    return SharedReplays(fake, "app:standard-webhooks")  # type: ignore[arg-type]


async def test_a_shared_store_refuses_an_id_another_replica_accepted() -> None:
    """Two filters sharing one store (two replicas, one Redis): the second sees a replay; the
    key expires when the timestamp leaves the window."""
    fake = FakeRedis()
    one, two = make(replay=shared(fake)), make(replay=shared(fake), now=NOW + 10)
    assert (await one(call(headers()), responder(200))).status == 200
    with pytest.raises(SignatureInvalid, match="already accepted"):
        await two(call(headers(ts=NOW + 5)), responder(200))
    assert fake.keys == {"replay:app:standard-webhooks:msg_1": 300.0}


@pytest.mark.parametrize("answer", ["down", "slow"])
async def test_the_shared_store_unreachable_fails_closed_with_503(answer: str) -> None:
    """Redis down or not answering within the backend's timeout: 503, never the app."""
    seen: list[Exchange] = []
    f = make(replay=shared(FakeRedis(answer=answer)))
    with pytest.raises(ReplayCheckUnavailable) as caught:
        await asyncio.wait_for(f(call(headers()), responder(200, seen=seen)), 5)
    assert caught.value.status == 503 and caught.value.code == "replay_check_unavailable"
    assert seen == []


async def test_a_forged_call_never_reaches_the_shared_store() -> None:
    """The store is asked only after the signature verified (no Redis write per forgery)."""
    fake = FakeRedis()
    with pytest.raises(SignatureInvalid):
        await make(replay=shared(fake))(call(headers(secret=new_secret())), responder(200))
    assert fake.keys == {}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"header": "x-sig"}, "fixed by the spec"),
        ({"secret": {"env": "WH_OLD"}}, "one of them"),
        ({"secrets": []}, "one of them"),
    ],
)
def test_settings_that_cannot_work_are_refused(settings: dict[str, Any], message: str) -> None:
    """The spec's header names cannot be changed; exactly one of secret or secrets."""
    with pytest.raises(ValueError, match=message):
        policy(**settings)


def check(verify_hmac: dict[str, Any], **extra: Any) -> str:
    """What the config loader (sidecar check, start-up, reload) reports, as one text."""
    text = {
        "upstreams": {"app": {"url": "http://127.0.0.1:9", "verify_hmac": verify_hmac}},
        **extra,
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(json.dumps(text), "sidecar.yaml")
    return str(caught.value)


def test_a_secret_that_is_no_whsec_secret_is_reported_at_its_key_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """sidecar check names the file, the key path and why, never the value."""
    monkeypatch.setenv("WH_BAD", "plaintext-password")
    out = check({"scheme": "standard-webhooks", "secrets": [{"env": "WH_OLD"}, {"env": "WH_BAD"}]})
    assert "sidecar.yaml: upstreams.app.verify_hmac.secrets[1]: the secret {env: WH_BAD}" in out
    assert "must start with whsec_" in out and "plaintext-password" not in out
    assert "secrets[0]" not in out


def test_the_replay_backend_must_be_a_configured_redis_backend() -> None:
    """replay_backend names a ratelimit_backends entry, and one of type redis."""
    policy = {"secret": {"env": "WH_OLD"}, "replay_backend": "shared"}
    assert "upstreams.app.verify_hmac.replay_backend: no backend named" in check(policy)
    local = {"ratelimit_backends": {"shared": {"type": "local"}}}
    assert "is not of type redis" in check(policy, **local)
