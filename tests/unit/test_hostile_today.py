"""Hostile header values against today's parsers: a ``Host`` port or a signature timestamp of
characters ``str.isdigit`` calls digits but ``int`` refuses ("²"), a fault status of 5000
digits, a hostile pact file, is refused with a clear reason, never a crash."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from sidecar.auth import verify
from sidecar.auth.replays import ReplayCache
from sidecar.auth.verify import make_verify_hmac
from sidecar.cassettes.file import CassetteError, load_interactions
from sidecar.cassettes.matching import difference, request_of
from sidecar.config.cassette import CassetteMatch
from sidecar.config.policies import VerifyHmacPolicy
from sidecar.config.secrets import SecretValue
from sidecar.contract.compare import compare_response
from sidecar.contract.from_cassette import pact_from_interactions
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


def _line(**parts: Any) -> str:
    request = {"method": "GET", "path": "/x", **parts.get("request", {})}
    response = {"status": 200, **parts.get("response", {})}
    return json.dumps({"request": request, "response": response})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"interactions": ' + "[" * 100_000 + "]" * 100_000 + "}", "not JSON"),
        (_line(request={"headers": {"accept": "*/*"}}), "request.headers is not"),
        (_line(response={"headers": [["a", "b", "c"]]}), "response.headers is not"),
        (_line(response={"body_base64": "abc"}), "response.body_base64 is not base64"),
        (_line(response={"status": 10**30}), "response.status not 100-999"),
    ],
    ids=["too-deep", "headers-object", "header-triple", "bad-base64", "status-huge"],
)
def test_a_cassette_of_another_shape_is_refused_where_it_is_wrong(
    tmp_path: Path, text: str, says: str
) -> None:
    """Replay and pact-from-cassette refuse a hostile cassette naming the place, not later
    with an error 500 per call or a traceback."""
    path = tmp_path / "c.jsonl"
    path.write_text(text + "\n")
    with pytest.raises(CassetteError, match=re.escape(says)):
        load_interactions(path)


def test_a_replayed_call_with_a_body_too_deep_to_parse_is_compared_as_bytes() -> None:
    """A JSON body nested too deep to read is a plain mismatch, not an error 500."""
    deep = b"[" * 100_000 + b"]" * 100_000
    recorded = request_of("POST", "/x", "", [], deep)
    call = request_of("POST", "/x", "", [], deep[1:-1])
    assert (difference(CassetteMatch(body=True), recorded, call) or "").startswith("body differs")


def test_a_recorded_json_body_too_deep_to_parse_becomes_a_text_body() -> None:
    """pact-from-cassette keeps a JSON body nested too deep to read as text, no traceback."""
    deep = "[" * 100_000 + "]" * 100_000
    headers = [["content-type", "application/json"]]
    response = {"status": 200, "headers": headers, "body": deep}
    interaction = {"request": {"method": "GET", "path": "/x"}, "response": response}
    pact = pact_from_interactions([interaction], "a", "b").pact
    assert pact["interactions"][0]["response"]["body"] == deep
