"""verify_hmac: only calls signed with the shared secret, fresh and seen once, reach the app."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from sidecar.api import ProviderContext
from sidecar.auth import verify
from sidecar.auth.hmac import HmacSettings, HmacSigner
from sidecar.auth.verify import ReplayCache, make_verify_hmac
from sidecar.chain import Filter
from sidecar.config.policies import VerifyHmacPolicy
from sidecar.config.secrets import SecretValue
from sidecar.config.types import SecretRef
from sidecar.errors import BodyTooLarge, SignatureInvalid
from sidecar.exchange import Exchange
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import make_exchange, responder

SECRET = "webhook-shared-secret"
NOW = 1_700_000_000


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)


def signed(
    body: bytes = b'{"event": "paid"}',
    *,
    secret: str = SECRET,
    ts: int = NOW,
    method: str = "POST",
    path: str = "/hooks/pay",
    query: str = "",
) -> Exchange:
    """A call signed by an independent implementation of the documented string-to-sign."""
    target = f"{path}?{query}" if query else path
    message = f"{ts}\n{method}\n{target}\n{hashlib.sha256(body).hexdigest()}".encode()
    signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    headers = {"x-signature": f"sha256={signature}", "x-timestamp": str(ts)}
    return make_exchange(method, path, headers, body, query=query)


def make(counts: dict[str, int] | None = None, *, now: float = NOW, **policy: Any) -> Filter:
    p = VerifyHmacPolicy.model_validate({"secret": {"env": "HOOK_SECRET"}, **policy})
    counters = {r: (lambda r=r: _bump(counts, r)) for r in verify.REASONS}
    replay = ReplayCache(p.replay_cache) if p.replay_cache else None
    return make_verify_hmac(
        p, SecretValue(p.secret, "verify_hmac.secret"), replay, counters, wall=lambda: now
    )


def _bump(counts: dict[str, int] | None, reason: str) -> None:
    if counts is not None:
        counts[reason] = counts.get(reason, 0) + 1


async def test_a_correctly_signed_call_passes() -> None:
    """A call signed with the shared secret (query included) reaches the app unchanged."""
    seen: list[Exchange] = []
    response = await make()(signed(query="id=7"), responder(200, seen=seen))
    assert response.status == 200 and seen[0].body == b'{"event": "paid"}'


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (signed(secret="someone-elses-secret"), "mismatch"),
        (signed(ts=NOW - 301), "stale"),
        (signed(ts=NOW + 301), "stale"),
        (make_exchange("POST", "/hooks/pay", {}, b"{}"), "missing"),
        (make_exchange("POST", "/hooks/pay", {"x-signature": "sha256=ab"}, b"{}"), "missing"),
        (
            make_exchange("POST", "/x", {"x-signature": "md5=ab", "x-timestamp": str(NOW)}),
            "malformed",
        ),
        (
            make_exchange("POST", "/x", {"x-signature": "sha256=ab", "x-timestamp": "yesterday"}),
            "malformed",
        ),
    ],
    ids=["wrong-secret", "stale", "from-the-future", "unsigned", "no-timestamp", "md5", "date"],
)
async def test_a_call_that_does_not_verify_is_refused_with_401(call: Exchange, reason: str) -> None:
    """Wrong secret, a timestamp outside ±max_skew, or missing/malformed headers: 401."""
    counts: dict[str, int] = {}
    seen: list[Exchange] = []
    with pytest.raises(SignatureInvalid) as caught:
        await make(counts)(call, responder(200, seen=seen))
    assert caught.value.status == 401 and caught.value.code == "signature_invalid"
    assert counts == {reason: 1} and seen == []
    assert SECRET not in caught.value.detail


async def test_a_tampered_body_or_path_is_refused() -> None:
    """The signature covers method, path and body: changing any one of them is caught."""
    call = signed()
    call.body = b'{"event": "refunded"}'
    with pytest.raises(SignatureInvalid):
        await make()(call, responder(200))
    call = signed()
    call.path = "/hooks/other"
    with pytest.raises(SignatureInvalid):
        await make()(call, responder(200))


async def test_a_replayed_call_is_refused_within_the_window() -> None:
    """The same signed call sent twice: the first passes, the copy gets 401 replay."""
    counts: dict[str, int] = {}
    f = make(counts)
    assert (await f(signed(), responder(200))).status == 200
    with pytest.raises(SignatureInvalid, match="already accepted"):
        await f(signed(), responder(200))
    assert counts == {"replay": 1}


async def test_a_forged_call_does_not_poison_the_replay_cache() -> None:
    """Only verified signatures are remembered: junk cannot evict or pre-empt real ones."""
    cache = ReplayCache(1)
    p = VerifyHmacPolicy.model_validate({"secret": {"env": "HOOK_SECRET"}})
    f = make_verify_hmac(p, SecretValue(p.secret, "s"), cache, wall=lambda: NOW)
    with pytest.raises(SignatureInvalid):
        await f(signed(secret="forger"), responder(200))
    assert cache.describe()["replay_cache"]["entries"] == 0


async def test_replay_protection_can_be_turned_off() -> None:
    """replay_cache: 0 accepts a repeated call (for senders that retry with one signature)."""
    f = make(replay_cache=0)
    for _ in range(2):
        assert (await f(signed(), responder(200))).status == 200


def test_the_replay_cache_forgets_what_left_the_window_and_stays_bounded() -> None:
    """Entries end with their window; past the bound the oldest are forgotten first."""
    cache = ReplayCache(3)
    assert not cache.seen_before("a", now=100, until=150)
    assert cache.seen_before("a", now=149, until=199)
    assert not cache.seen_before("a", now=151, until=201)  # its window had passed
    for sig in "bcd":
        assert not cache.seen_before(sig, now=152, until=202)
    assert cache.describe()["replay_cache"] == {"entries": 3, "max": 3}
    assert not cache.seen_before("a", now=153, until=203)  # the oldest ("a") was forgotten


async def test_a_body_over_max_body_is_refused_with_413() -> None:
    """Bodies are verified whole, so their size is bounded."""
    with pytest.raises(BodyTooLarge):
        await make(max_body="8B")(signed(b"x" * 9), responder(200))


async def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Signatures are compared with hmac.compare_digest (no timing oracle)."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(verify.hmac, "compare_digest", recording)
    await make()(signed(), responder(200))
    assert len(calls) == 1 and isinstance(calls[0][0], bytes)


async def test_a_non_ascii_signature_is_refused_not_a_crash() -> None:
    """Latin-1 junk in the header is a 401 mismatch, never a 500."""
    call = make_exchange(
        "POST", "/x", {"x-signature": "sha256=\xe9\xe9", "x-timestamp": str(NOW)}, b""
    )
    with pytest.raises(SignatureInvalid):
        await make()(call, responder(200))


async def test_what_the_hmac_provider_signs_the_verifier_accepts() -> None:
    """Two sidecars interoperate: one's ``auth: {type: hmac}`` passes the other's verify_hmac."""
    ctx = ProviderContext(
        upstream="hooks",
        type_name="hmac",
        base_path="",
        metrics=Metrics(),
        log=None,  # type: ignore[arg-type]
        spawn=None,  # type: ignore[arg-type]
        http_session=None,  # type: ignore[arg-type]
        clock=lambda: 0.0,
        wall=lambda: NOW + 0.7,
    )
    signer = HmacSigner(HmacSettings(secret=SecretRef(env="HOOK_SECRET")), ctx)
    call = make_exchange("POST", "/hooks/pay", body=b"{}", query="a=b")
    await signer.apply(call)
    assert (await make()(call, responder(200))).status == 200
