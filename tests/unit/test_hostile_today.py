"""Hostile header values against today's parsers: a ``Host`` port or a signature timestamp of
characters ``str.isdigit`` calls digits but ``int`` refuses ("²"), or a fault status of 5000
digits, is refused, never a crash."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest

from sidecar.auth import verify
from sidecar.auth.replays import ReplayCache
from sidecar.auth.verify import make_verify_hmac
from sidecar.config.policies import VerifyHmacPolicy
from sidecar.config.secrets import SecretValue
from sidecar.errors import BadRequest, SignatureInvalid
from sidecar.filters.fault import ABORT_HEADER, plan_from_headers
from sidecar.hosts import split_host
from sidecar.testing import make_exchange, responder

WHSEC = "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WH_SECRET", WHSEC)
    monkeypatch.setenv("HOOK_SECRET", "s3cret-hook-key")


@pytest.mark.parametrize("value", ["127.0.0.1:²", "[::1]:¹²", "localhost:٣"])
def test_a_host_port_of_non_ascii_digits_matches_nothing(value: str) -> None:
    """A ``Host`` port that is not ASCII digits makes the whole value the host (refused)."""
    assert split_host(value) == (value, None)


def _filter(**settings: Any) -> Any:
    p = VerifyHmacPolicy.model_validate(settings)
    values = [SecretValue(ref, where) for where, ref in p.all_secrets]
    counters = {r: (lambda: None) for r in verify.REASONS}
    secrets: Any = values if p.scheme == "standard-webhooks" else values[0]
    return make_verify_hmac(p, secrets, ReplayCache(10), counters, wall=lambda: 1_700_000_000)


@pytest.mark.parametrize(
    ("settings", "headers"),
    [
        (
            {"scheme": "standard-webhooks", "secrets": [{"env": "WH_SECRET"}]},
            {"webhook-id": "msg_1", "webhook-timestamp": "¹⁷", "webhook-signature": "v1,AAAA"},
        ),
        (
            {"secret": {"env": "HOOK_SECRET"}},
            {"x-signature": "sha256=00", "x-timestamp": "²"},
        ),
    ],
    ids=["standard-webhooks", "sidecar"],
)
async def test_a_timestamp_of_superscript_digits_is_malformed(
    settings: dict[str, Any], headers: dict[str, str]
) -> None:
    """A timestamp of "digits" ``int`` refuses is a 401 ``malformed``, not an error 500."""
    with pytest.raises(SignatureInvalid, match="Unix time in seconds"):
        await _filter(**settings)(make_exchange("POST", "/h", headers, b"{}"), responder(200))


@pytest.mark.parametrize("digits", ["5" * 5000, "0" * 4000 + "503", "0503"])
def test_a_fault_abort_status_of_many_digits_is_a_bad_request(digits: str) -> None:
    """An app's abort status longer than 3 digits is a 400, not an error 500 from ``int``."""
    exchange = make_exchange("GET", "/x", {ABORT_HEADER: digits}, b"")
    with pytest.raises(BadRequest, match="a status from 400 to 599"):
        plan_from_headers(exchange, 1.0)
