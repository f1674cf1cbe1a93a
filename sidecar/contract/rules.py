"""Pact's matching rules on a body: :func:`compare_body`, and :func:`judge` for one value.

Without a rule, Pact's defaults apply: in a JSON body each expected key is there (more keys are
allowed), arrays have the expected length, and values are equal; a text body is equal. A rule
applies to its path and, unless a more specific one does, to everything under it (a ``type``
rule on an object makes its whole subtree match by type); the most specific path wins (named keys
and indexes weigh more than ``*``).

Matchers understood: ``type`` (with ``min``/``max`` on arrays, each element then matched against
the first expected one), ``regex``, ``equality``, ``include``, ``integer``, ``decimal``,
``number``, ``boolean``, ``null``, ``notEmpty``, ``date``, ``time``, ``datetime``/``timestamp``
(:mod:`.dates`) and ``semver``. Any other matcher fails its path, saying it is not supported,
rather than passing unchecked. Not here: status and headers (:mod:`.compare`).
"""

from __future__ import annotations

__all__ = ["compare_body", "judge"]

import contextlib
import json
import re
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .dates import iso_date_ok, java_date_regex
from .pact import RuleSet

#: Seconds one pact ``regex`` may take on one value: a pattern like ``(a+)+$`` backtracks for
#: ever on a long enough text, and ``re`` has no timeout of its own (it does check for signals).
REGEX_SECONDS = 2.0

#: A path token: a key (``"name"``), an index (``3``), or a wildcard (``"*"`` key, ``-1`` index).
Token = str | int
_STAR_INDEX = -1
_PATH_TOKEN = re.compile(r"\.(\*|[^.\[\]]+)|\[(\*|\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def _tokens(path: str) -> tuple[Token, ...] | None:
    """``$.a[0].*`` as ``("a", 0, "*")``; ``None`` when it is not a path this module reads."""
    if not path.startswith("$"):
        return None
    out: list[Token] = []
    at = 1
    while at < len(path):
        m = _PATH_TOKEN.match(path, at)
        if m is None:
            return None
        key, index, quoted, dquoted = m.groups()
        if index is not None:
            out.append(_STAR_INDEX if index == "*" else int(index))
        else:
            out.append(next(t for t in (key, quoted, dquoted) if t is not None))
        at = m.end()
    return tuple(out)


def _weight(rule: Sequence[Token], path: Sequence[Token]) -> int:
    """How well ``rule`` names ``path`` or one of its ancestors (0: not at all)."""
    if len(rule) > len(path):
        return 0
    weight = 1
    for want, got in zip(rule, path, strict=False):
        if want == got:
            weight *= 2
        elif (want == "*" and isinstance(got, str)) or (
            want == _STAR_INDEX and isinstance(got, int)
        ):
            weight *= 1
        else:
            return 0
    return weight


class _Rules:
    """The body rules of one response, by parsed path."""

    def __init__(self, rules: Mapping[str, RuleSet]) -> None:
        self.paths: list[tuple[tuple[Token, ...], RuleSet]] = []
        for path, rule in rules.items():
            parsed = _tokens(path)
            if parsed is not None:
                self.paths.append((parsed, rule))

    def at(self, path: tuple[Token, ...]) -> tuple[RuleSet, bool] | None:
        """The rule governing ``path`` and whether it names ``path`` itself (not an ancestor)."""
        best: tuple[int, int, tuple[Token, ...], RuleSet] | None = None
        for tokens, rule in self.paths:
            w = _weight(tokens, path)
            if w and (best is None or (w, len(tokens)) > (best[0], best[1])):
                best = (w, len(tokens), tokens, rule)
        if best is None:
            return None
        return best[3], len(best[2]) == len(path)


def _show(path: tuple[Token, ...]) -> str:
    out = "$"
    for t in path:
        out += f"[{t}]" if isinstance(t, int) else f".{t}"
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _text(value: Any) -> str:
    """``value`` as text is matched (a string as it is, anything else as JSON)."""
    return value if isinstance(value, str) else json.dumps(value)


def _shown(value: Any) -> str:
    """``value`` as a message shows it: JSON (so ``"42"`` and ``42`` differ), cut at 200."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:200] + "..."


_SEMVER = re.compile(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")


def _leaf(matcher: Mapping[str, Any], expected: Any, actual: Any) -> str | None:
    """Why ``actual`` fails ``matcher`` (``None``: it passes). Containers reach here only for
    matchers that judge a value whole."""
    kind = matcher.get("match", "type")
    if kind == "type":
        if _kind(actual) != _kind(expected):
            return f"expected a {_kind(expected)} (type), got {_shown(actual)}"
        return None
    if kind == "regex":
        regex = str(matcher.get("regex", ""))
        if isinstance(actual, dict | list):
            return f"expected to match /{regex}/, got {_shown(actual)}"
        try:
            with _time_bound(REGEX_SECONDS):
                matched = re.fullmatch(regex, _text(actual)) is not None
        except _TooSlow:
            return f"/{regex}/ took over {REGEX_SECONDS:g}s on {_shown(actual)} (backtracking)"
        if not matched:
            return f"expected to match /{regex}/, got {_shown(actual)}"
        return None
    if kind == "equality":
        if _kind(actual) != _kind(expected) or actual != expected:
            return f"expected {_shown(expected)} (equality), got {_shown(actual)}"
        return None
    if kind == "include":
        value = str(matcher.get("value", ""))
        return (
            None
            if value in _text(actual)
            else f"expected to include {value!r}, got {_shown(actual)}"
        )
    checks = {
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "decimal": lambda v: isinstance(v, float),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
        "notEmpty": lambda v: v not in (None, "", [], {}),
        "semver": lambda v: isinstance(v, str) and _SEMVER.fullmatch(v) is not None,
    }
    check = checks.get(str(kind))
    if check is not None:
        return None if check(actual) else f"expected {kind}, got {_shown(actual)}"
    if kind in ("date", "time", "datetime", "timestamp"):
        fmt = matcher.get("format") or matcher.get(kind)
        if not isinstance(actual, str):
            return f"expected a {kind} string, got {_shown(actual)}"
        if isinstance(fmt, str) and fmt:
            ok = java_date_regex(fmt).fullmatch(actual) is not None
            return None if ok else f"expected a {kind} formatted {fmt!r}, got {_shown(actual)}"
        return (
            None
            if iso_date_ok(actual, str(kind))
            else f"expected an ISO 8601 {kind}, got {_shown(actual)}"
        )
    return f"matcher {kind!r} is not supported by this verifier"


def judge(rule: RuleSet, expected: Any, actual: Any, exact: bool) -> list[str]:
    """The failures of ``rule``'s matchers on one value (``exact``: the rule names this path,
    so an array's ``min``/``max`` apply; inherited by an element, they do not)."""
    failures = []
    for matcher in rule.matchers:
        why = None
        if isinstance(actual, list) and exact:
            low, high = matcher.get("min"), matcher.get("max")
            if isinstance(low, int) and len(actual) < low:
                why = f"expected at least {low} items, got {len(actual)}"
            elif isinstance(high, int) and len(actual) > high:
                why = f"expected at most {high} items, got {len(actual)}"
        if why is None:
            why = _leaf(matcher, expected, actual)
        if why is not None:
            failures.append(why)
    if rule.combine == "OR" and len(failures) < len(rule.matchers):
        return []
    return failures


def _by_type(rule: RuleSet) -> bool:
    """Whether ``rule`` matches containers by type (their children then follow it too)."""
    return bool(rule.matchers) and all(m.get("match", "type") == "type" for m in rule.matchers)


def _compare(
    rules: _Rules, path: tuple[Token, ...], expected: Any, actual: Any, out: list[str]
) -> None:
    found = rules.at(path)
    if found is not None:
        rule, exact = found
        failures = judge(rule, expected, actual, exact)
        out.extend(f"{_show(path)}: {why}" for why in failures)
        if failures or not _by_type(rule) or not isinstance(expected, dict | list):
            return  # a leaf, or a container judged whole (equality, regex...)
        by_type = True
    else:
        by_type = False
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            out.append(f"{_show(path)}: expected an object, got {_shown(actual)}")
            return
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{_show((*path, key))}: missing (expected {_shown(value)})")
            else:
                _compare(rules, (*path, key), value, actual[key], out)
        return
    if isinstance(expected, list):
        if not isinstance(actual, list):
            out.append(f"{_show(path)}: expected an array, got {_shown(actual)}")
            return
        if by_type and expected:
            for i, item in enumerate(actual):  # each element like the first expected one
                _compare(rules, (*path, i), expected[0], item, out)
            return
        if len(actual) != len(expected):
            out.append(f"{_show(path)}: expected {len(expected)} items, got {len(actual)}")
            return
        for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
            _compare(rules, (*path, i), want, got, out)
        return
    if not by_type and (_kind(actual) != _kind(expected) or actual != expected):
        out.append(f"{_show(path)}: expected {_shown(expected)}, got {_shown(actual)}")


def compare_body(rules: Mapping[str, RuleSet], expected: Any, actual: Any) -> list[str]:
    """Every way ``actual`` (a parsed JSON value, or text) misses ``expected`` under the body
    ``rules`` (by path, as the pact writes them)."""
    out: list[str] = []
    _compare(_Rules(rules), (), expected, actual, out)
    return out


class _TooSlow(Exception):
    """A regex ran past :data:`REGEX_SECONDS`."""


def _too_slow(signum: int, frame: object) -> None:
    raise _TooSlow


@contextlib.contextmanager
def _time_bound(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` with :class:`_TooSlow` (a real-time interval timer;
    the ``sidecar contract`` commands run it on the main thread, where signals are delivered).
    Elsewhere the block runs unbounded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _too_slow)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
