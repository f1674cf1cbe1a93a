"""Pact files read in every version, and Pact's matching rules, without sockets."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sidecar.contract.compare import compare_response
from sidecar.contract.dates import java_date_regex
from sidecar.contract.from_cassette import pact_from_interactions
from sidecar.contract.pact import PactError, PactResponse, parse_pact

JSON = {"content-type": "application/json"}


def response(body: Any, rules: dict[str, Any] | None = None, status: int = 200) -> PactResponse:
    """The expected response of a one-interaction V3 pact."""
    raw: dict[str, Any] = {"status": status, "headers": {"Content-Type": "application/json"}}
    raw["body"] = body
    if rules is not None:
        raw["matchingRules"] = {"body": rules}
    doc = {"interactions": [{"description": "d", "request": {"method": "GET", "path": "/"}}]}
    doc["interactions"][0]["response"] = raw
    return parse_pact(doc).interactions[0].response


def check(expected: PactResponse, actual: bytes, status: int = 200) -> list[str]:
    return compare_response(expected, status, JSON, actual)


def rule(*matchers: dict[str, Any], combine: str = "AND") -> dict[str, Any]:
    return {"matchers": list(matchers), "combine": combine}


def test_v2_pacts_are_read_with_their_state_query_string_and_rules() -> None:
    """A V2 pact's providerState, query string and $.body rules are understood."""
    doc = {
        "consumer": {"name": "a"},
        "provider": {"name": "b"},
        "metadata": {"pactSpecification": {"version": "2.0.0"}},
        "interactions": [
            {
                "description": "list",
                "providerState": "some items",
                "request": {"method": "get", "path": "/items", "query": "page=2&q=x"},
                "response": {
                    "status": 200,
                    "body": {"items": [1]},
                    "matchingRules": {"$.body.items": {"min": 1}},
                },
            }
        ],
    }
    pact = parse_pact(doc)
    [i] = pact.interactions
    assert (pact.consumer, pact.provider, pact.version) == ("a", "b", "2.0.0")
    assert i.states == (("some items", {}),)
    assert i.request.method == "GET"
    assert i.request.query == (("page", "2"), ("q", "x"))
    assert check(i.response, b'{"items": [5, 6, 7]}') == []
    assert check(i.response, b'{"items": []}') == ["$.items: expected at least 1 items, got 0"]


def test_v4_http_interactions_are_read_and_messages_skipped() -> None:
    """V4 bodies, list headers and query values are read; a message interaction is skipped."""
    doc = {
        "metadata": {"pactSpecification": {"version": "4.0"}},
        "interactions": [
            {
                "type": "Synchronous/HTTP",
                "description": "create",
                "providerStates": [{"name": "empty", "params": {"n": 1}}],
                "request": {
                    "method": "POST",
                    "path": "/things",
                    "query": {"dry": ["1"]},
                    "headers": {"Content-Type": ["application/json"]},
                    "body": {"content": {"a": 1}, "contentType": "application/json"},
                },
                "response": {
                    "status": 201,
                    "headers": {"Content-Type": ["application/json"]},
                    "body": {"content": {"id": 9}, "contentType": "application/json"},
                    "matchingRules": {
                        "body": {"$.id": rule({"match": "integer"})},
                        "status": {"$": rule({"match": "statusCode", "status": "success"})},
                    },
                },
            },
            {"type": "Asynchronous/Messages", "description": "an event", "contents": {}},
        ],
    }
    pact = parse_pact(doc)
    [i] = pact.interactions
    assert pact.skipped == ("an event (Asynchronous/Messages)",)
    assert i.states == (("empty", {"n": 1}),)
    assert i.request.body == b'{"a": 1}'
    assert i.request.query == (("dry", "1"),)
    assert compare_response(i.response, 202, JSON, b'{"id": 10}') == []
    assert compare_response(i.response, 404, JSON, b'{"id": "x"}') == [
        "status: expected a success status, got 404",
        '$.id: expected integer, got "x"',
    ]


def test_a_file_that_is_no_pact_is_refused_with_a_reason() -> None:
    """A pact without interactions or with a broken one says what is wrong."""
    with pytest.raises(PactError, match="no 'interactions' list"):
        parse_pact({"consumer": {"name": "a"}})
    with pytest.raises(PactError, match="needs a 'request' and a 'response'"):
        parse_pact({"interactions": [{"description": "x"}]})


def test_without_rules_values_are_equal_keys_present_and_extra_keys_allowed() -> None:
    """Pact's defaults: equal values, expected keys there, more keys fine, arrays as long."""
    expected = response({"a": 1, "b": {"c": "x"}, "d": [1, 2]})
    assert check(expected, b'{"a": 1, "b": {"c": "x", "more": 1}, "d": [1, 2], "e": 0}') == []
    assert check(expected, b'{"a": "1", "b": {}, "d": [1]}') == [
        '$.a: expected 1, got "1"',
        '$.b.c: missing (expected "x")',
        "$.d: expected 2 items, got 1",
    ]
    assert check(expected, b"not json")[0].startswith("body: expected JSON")


@pytest.mark.parametrize(
    ("matcher", "expected", "good", "bad"),
    [
        ({"match": "type"}, "s", "other", 1),
        ({"match": "regex", "regex": r"\d{3}-\d{4}"}, "555-1234", "123-4567", "12-34"),
        ({"match": "equality"}, "exact", "exact", "Exact"),
        ({"match": "include", "value": "ell"}, "hello", "yellow", "help"),
        ({"match": "integer"}, 1, 42, 1.5),
        ({"match": "decimal"}, 1.5, 2.25, 2),
        ({"match": "number"}, 1, 2.5, "2"),
        ({"match": "boolean"}, True, False, "true"),
        ({"match": "null"}, None, None, 0),
        ({"match": "date", "format": "yyyy-MM-dd"}, "2024-01-02", "2025-12-31", "2025-13-01"),
        ({"match": "time", "format": "HH:mm:ss"}, "10:00:00", "23:59:59", "24:00:00"),
        (
            {"match": "datetime", "format": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"},
            "2024-01-02T03:04:05.000Z",
            "2024-01-02T03:04:05.123+02:00",
            "2024-01-02 03:04:05",
        ),
        ({"match": "timestamp"}, "2024-01-02T03:04:05Z", "2024-01-02T03:04:05+00:00", "later"),
        ({"match": "semver"}, "1.0.0", "2.10.3-rc.1", "2.10"),
    ],
)
def test_each_matcher_passes_what_it_allows_and_fails_the_rest(
    matcher: dict[str, Any], expected: Any, good: Any, bad: Any
) -> None:
    """Each supported matcher accepts a value of its kind and refuses one that is not."""
    import json

    pact = response({"v": expected}, {"$.v": rule(matcher)})
    assert check(pact, json.dumps({"v": good}).encode()) == []
    [failure] = check(pact, json.dumps({"v": bad}).encode())
    assert failure.startswith("$.v: expected")


def test_a_type_rule_cascades_and_array_elements_follow_the_first_expected_one() -> None:
    """A type rule on an array (min 1) matches any length ≥ 1 whose elements look like the
    first expected element, field by field by type."""
    pact = response(
        {"users": [{"id": 1, "name": "a"}]}, {"$.users": rule({"match": "type", "min": 1})}
    )
    good = b'{"users": [{"id": 5, "name": "x"}, {"id": 6, "name": "y", "extra": true}]}'
    assert check(pact, good) == []
    assert check(pact, b'{"users": [{"id": "5", "name": "x"}]}') == [
        '$.users[0].id: expected a number (type), got "5"'
    ]
    assert check(pact, b'{"users": []}') == ["$.users: expected at least 1 items, got 0"]


def test_the_most_specific_path_wins_and_wildcards_reach_every_element() -> None:
    """$.items[*].id applies to each element; a named key beats a wildcard beside it."""
    rules = {
        "$.items": rule({"match": "type"}),
        "$.items[*].id": rule({"match": "regex", "regex": "[a-z]+-\\d+"}),
        "$.*": rule({"match": "type"}),
        "$.count": rule({"match": "integer"}),
    }
    pact = response({"items": [{"id": "a-1"}], "count": 1, "name": "n"}, rules)
    assert check(pact, b'{"items": [{"id": "b-2"}, {"id": "c-3"}], "count": 2, "name": "m"}') == []
    assert check(pact, b'{"items": [{"id": "b-2"}, {"id": "x"}], "count": 2.5, "name": 1}') == [
        '$.items[1].id: expected to match /[a-z]+-\\d+/, got "x"',
        "$.count: expected integer, got 2.5",
        "$.name: expected a string (type), got 1",
    ]


def test_or_combines_and_an_unsupported_matcher_fails_rather_than_passes() -> None:
    """OR passes when one matcher does; a matcher this verifier lacks fails its path."""
    either = rule({"match": "integer"}, {"match": "null"}, combine="OR")
    pact = response({"v": 1}, {"$.v": either})
    assert check(pact, b'{"v": null}') == []
    assert len(check(pact, b'{"v": "1"}')) == 2
    odd = response({"v": [1]}, {"$.v": rule({"match": "arrayContains", "variants": []})})
    assert check(odd, b'{"v": [1]}') == [
        "$.v: matcher 'arrayContains' is not supported by this verifier"
    ]


def test_headers_compare_media_types_loosely_and_other_values_exactly() -> None:
    """Content-Type by media type and charset in any case; other headers item by item."""
    doc = {
        "interactions": [
            {
                "description": "h",
                "request": {"method": "GET", "path": "/"},
                "response": {
                    "status": 200,
                    "headers": {"Content-Type": "application/json; charset=utf-8", "X-A": "1, 2"},
                    "matchingRules": {
                        "header": {"X-Id": rule({"match": "regex", "regex": "\\d+"})}
                    },
                },
            }
        ]
    }
    expected = parse_pact(doc).interactions[0].response
    expected = PactResponse(
        expected.status, {**expected.headers, "x-id": "7"}, rules=expected.rules
    )
    ok = {"content-type": "application/json;charset=UTF-8", "x-a": "1,2", "x-id": "123"}
    assert compare_response(expected, 200, ok, b"") == []
    bad = {"content-type": "text/plain", "x-a": "2, 1", "x-id": "abc"}
    assert compare_response(expected, 200, bad, b"") == [
        "header content-type: expected 'application/json; charset=utf-8', got 'text/plain'",
        "header x-a: expected '1, 2', got '2, 1'",
        'header x-id: expected to match /\\d+/, got "abc"',
    ]


def test_java_date_patterns_become_regexes() -> None:
    """The formats pact libraries write (Java SimpleDateFormat) are understood."""
    pattern = java_date_regex("yyyy-MM-dd'T'HH:mm:ss'Z'")
    assert pattern.fullmatch("2024-01-02T03:04:05Z")
    assert not pattern.fullmatch("2024-01-02T03:04:05+01:00")
    assert java_date_regex("EEE, dd MMM yyyy HH:mm:ss z").fullmatch("Tue, 02 Jan 2024 03:04:05 GMT")


def test_a_cassette_becomes_a_v3_pact_without_its_secrets() -> None:
    """Recorded calls become interactions with JSON bodies; redacted values and binary bodies
    are left out, and repeated calls get numbered descriptions."""
    recorded = {
        "request": {
            "method": "GET",
            "path": "/u/1",
            "query": "key=<redacted>&v=2",
            "headers": [["authorization", "<redacted>"], ["accept", "application/json"]],
            "body": "",
        },
        "response": {
            "status": 200,
            "headers": [["content-type", "application/json"], ["set-cookie", "<redacted>"]],
            "body": '{"id": 1}',
        },
    }
    binary = {
        "request": {"method": "GET", "path": "/img", "query": "", "headers": [], "body": ""},
        "response": {"status": 200, "headers": [], "body_base64": "iVBO"},
    }
    conversion = pact_from_interactions([recorded, recorded, binary], "app", "users")
    first, second, image = conversion.pact["interactions"]
    assert first["description"] == "GET /u/1?key=<redacted>&v=2"
    assert second["description"].endswith("(#2)")
    assert first["request"] == {
        "method": "GET",
        "path": "/u/1",
        "query": {"v": ["2"]},
        "headers": {"accept": "application/json"},
    }
    assert first["response"] == {
        "status": 200,
        "headers": {"content-type": "application/json"},
        "body": {"id": 1},
    }
    assert "body" not in image["response"]
    assert conversion.notes == ("GET /img: response body left out (binary or truncated)",)
    assert parse_pact(conversion.pact).interactions[0].response.body == {"id": 1}


def test_a_regex_that_backtracks_for_ever_fails_its_path_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pact regex like ``(a+)+$`` on a provider's long near-match cannot hang the verifier:
    the value fails, saying the pattern took too long."""
    from sidecar.contract import rules

    monkeypatch.setattr(rules, "REGEX_SECONDS", 0.2)
    pact = response({"v": "aaa"}, {"$.v": rule({"match": "regex", "regex": "(a+)+$"})})
    assert check(pact, b'{"v": "aaaa"}') == []  # the timer does not disturb a quick match
    started = time.monotonic()
    [failure] = check(pact, ('{"v": "' + "a" * 40 + '!"}').encode())
    assert time.monotonic() - started < 5
    assert failure.startswith("$.v: /(a+)+$/ took over 0.2s on")
