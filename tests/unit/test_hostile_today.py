"""Hostile header values against today's parsers: a ``Host`` port or a signature timestamp of
characters ``str.isdigit`` calls digits but ``int`` refuses ("²"), a fault status of 5000
digits, a hostile pact file, is refused with a clear reason, never a crash."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

import pytest

from sidecar.auth import verify
from sidecar.auth.replays import ReplayCache
from sidecar.auth.verify import make_verify_hmac
from sidecar.config.policies import VerifyHmacPolicy
from sidecar.config.secrets import SecretValue
from sidecar.contract.compare import compare_response
from sidecar.contract.pact import PactError, load_pact, parse_pact
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


def _pact(response: dict[str, Any]) -> dict[str, Any]:
    request = {"method": "GET", "path": "/x"}
    return {"interactions": [{"description": "d", "request": request, "response": response}]}


def _regex(regex: str) -> dict[str, Any]:
    matchers = {"matchers": [{"match": "regex", "regex": regex}]}
    return {"status": 200, "body": {"a": "x"}, "matchingRules": {"body": {"$.a": matchers}}}


@pytest.mark.parametrize(
    ("response", "says"),
    [
        ({"status": "abc"}, "invalid literal"),
        ({"status": float("inf")}, "OverflowError"),
        ({"status": 200, "headers": ["a"]}, "AttributeError"),
        (_regex("("), "regex /(/: missing )"),
        ({"body": {"content": "[" * 5000 + "]" * 5000, "encoded": "json"}}, "RecursionError"),
    ],
    ids=["status-text", "status-infinite", "headers-list", "bad-regex", "content-too-deep"],
)
def test_a_pact_field_of_the_wrong_type_or_value_is_a_pact_error(
    response: dict[str, Any], says: str
) -> None:
    """``contract verify`` exits 2 naming the interaction, not with a traceback."""
    with pytest.raises(PactError, match=r"interactions\[0\]: .*" + re.escape(says)):
        parse_pact(_pact(response))


def test_a_pact_nested_too_deep_to_read_is_a_pact_error(tmp_path: Path) -> None:
    """A pact file of 100 000 nested arrays is refused as unreadable JSON."""
    path = tmp_path / "deep.json"
    path.write_text('{"interactions": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(PactError, match="cannot be read as JSON"):
        load_pact(path)


def test_a_provider_answer_nested_too_deep_is_a_failure() -> None:
    """A provider's JSON body too deep to read fails the interaction, not the verifier."""
    expected = parse_pact(_pact({"status": 200, "body": []})).interactions[0].response
    failures = compare_response(expected, 200, {}, b"[" * 100_000 + b"]" * 100_000)
    assert failures and failures[0].startswith("body: expected JSON")
