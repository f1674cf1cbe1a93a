"""Does a provider's answer keep the pact? :func:`compare_response`, one line per mismatch.

The status is equal (or in a ``statusCode`` matcher's class); each expected header is there, a
``content-type`` compared by media type and parameters in any case, other values item by item
(an item with parameters as a media type, any other exactly), or by its ``header`` rule; the body
by :func:`~.rules.compare_body`. An expected empty or null body refuses a non-empty one; a pact
without a body accepts any. Not here: the matchers (:mod:`.rules`).
"""

from __future__ import annotations

__all__ = ["compare_response"]

import json
from collections.abc import Mapping

from .pact import PactResponse, RuleSet
from .rules import compare_body, judge


def _media(value: str) -> tuple[str, dict[str, str]]:
    media, _, rest = value.partition(";")
    params = {}
    for part in rest.split(";"):
        key, eq, val = part.partition("=")
        if eq:
            params[key.strip().lower()] = val.strip().strip('"').lower()
    return media.strip().lower(), params


def _header_differs(name: str, expected: str, actual: str) -> bool:
    """Pact's header comparison: ``content-type`` by media type; other values item by item
    (split at commas, spaces around them ignored), an item with parameters (``a/b;
    charset=utf-8``) by media type and parameters in any case, any other item exactly."""
    if name == "content-type":
        return _media_differs(expected, actual)
    want = [v.strip() for v in expected.split(",")]
    got = [v.strip() for v in actual.split(",")]
    if len(want) != len(got):
        return True
    return any(_media_differs(w, g) if ";" in w else w != g for w, g in zip(want, got, strict=True))


def _media_differs(expected: str, actual: str) -> bool:
    want, got = _media(expected), _media(actual)
    return want[0] != got[0] or any(got[1].get(k) != v for k, v in want[1].items())


def compare_response(
    expected: PactResponse, status: int, headers: Mapping[str, str], body: bytes
) -> list[str]:
    """Every way the answer (``headers`` by lower-case name) misses ``expected``."""
    out: list[str] = []
    status_rule = expected.rules.get("status", {}).get("$")
    if status_rule is not None and any(
        m.get("match") == "statusCode" for m in status_rule.matchers
    ):
        why = _status_class(status_rule, status)
        if why:
            out.append(f"status: {why}")
    elif status != expected.status:
        out.append(f"status: expected {expected.status}, got {status}")
    header_rules = expected.rules.get("header", {})
    for name, want in expected.headers.items():
        got = headers.get(name)
        if got is None:
            out.append(f"header {name}: missing (expected {want!r})")
            continue
        rule = header_rules.get(name)
        if rule is not None:
            out.extend(f"header {name}: {why}" for why in judge(rule, want, got, True))
        elif _header_differs(name, want, got):
            out.append(f"header {name}: expected {want!r}, got {got!r}")
    if not expected.has_body:
        return out  # no body in the pact: any body passes
    if expected.body is None or expected.body == "":
        if body.strip() not in (b"", b"null", b'""'):
            out.append(f"body: expected none, got {len(body)} bytes")
        return out
    rules = expected.rules.get("body", {})
    if expected.json:
        try:
            actual = json.loads(body) if body else None
        except (ValueError, RecursionError):  # (nested too deep to read)
            out.append(f"body: expected JSON, got {body[:80]!r}")
            return out
        out.extend(compare_body(rules, expected.body, actual))
    else:
        out.extend(compare_body(rules, str(expected.body), body.decode("utf-8", "replace")))
    return out


_STATUS_CLASSES = {
    "information": range(100, 200),
    "success": range(200, 300),
    "redirect": range(300, 400),
    "clientError": range(400, 500),
    "serverError": range(500, 600),
    "nonError": range(100, 400),
    "error": range(400, 600),
}


def _status_class(rule: RuleSet, status: int) -> str | None:
    for matcher in rule.matchers:
        want = matcher.get("status")
        if isinstance(want, list):
            if status not in [int(x) for x in want]:
                return f"expected one of {want}, got {status}"
        elif isinstance(want, str):
            if status not in _STATUS_CLASSES.get(want, range(0)):
                return f"expected a {want} status, got {status}"
    return None
