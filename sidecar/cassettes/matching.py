"""Which recorded interaction answers a replayed call (:class:`Replayer`).

A call matches a recorded request when every rule of ``cassette.match`` holds: the method, the
path, the query (parameters in any order, each name's values in order), the body (JSON compared
as parsed JSON, anything else byte for byte), and each named header. A value recorded as
``<redacted>`` (a credential) matches any value, since the live call carries the real one.

Several recorded interactions may match one call (the same request recorded several times): the
first call gets the first of them, the next call the second, and once they are used up the last
one answers every later call, as VCR-style tools replay. When none matches, :class:`NoMatch`
names the closest recorded request (same method first, then the most similar path) and the
first rule it fails, so a test failure says what changed.

Not here: reading the file (:mod:`.file`), answering the app (:mod:`.handler`).
"""

from __future__ import annotations

__all__ = ["NoMatch", "RecordedRequest", "Replayer", "difference", "request_of"]

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any
from urllib.parse import parse_qsl

from ..config.cassette import CassetteMatch
from .file import REDACTED, body_of


class NoMatch(LookupError):
    """No recorded interaction matches a call; the message says which is closest, and why not."""


@dataclass(frozen=True)
class RecordedRequest:
    """A request as matching compares it."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, tuple[str, ...]]
    body: bytes

    @property
    def target(self) -> str:
        if not self.query:
            return self.path
        return self.path + "?" + "&".join(f"{k}={v}" for k, v in self.query)


def request_of(
    method: str, path: str, query: str, headers: Iterable[Sequence[str]], body: bytes
) -> RecordedRequest:
    """A request in the form matching compares (query parameters sorted by name, stably)."""
    params = sorted(parse_qsl(query, keep_blank_values=True), key=lambda kv: kv[0])
    by_name: dict[str, list[str]] = {}
    for pair in headers:
        by_name.setdefault(str(pair[0]).lower(), []).append(str(pair[1]))
    return RecordedRequest(
        method.upper(),
        path,
        tuple(params),
        {k: tuple(v) for k, v in by_name.items()},
        body,
    )


def _recorded(interaction: Mapping[str, Any]) -> RecordedRequest:
    request = interaction["request"]
    return request_of(
        request["method"],
        request["path"],
        str(request.get("query") or ""),
        request.get("headers") or [],
        body_of(request),
    )


def _values_match(recorded: Sequence[str], live: Sequence[str]) -> bool:
    if len(recorded) != len(live):
        return False
    return all(r == REDACTED or r == v for r, v in zip(recorded, live, strict=True))


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # (nested too deep: compared as bytes)
        return _NOT_JSON


_NOT_JSON = object()


def difference(
    rules: CassetteMatch, recorded: RecordedRequest, call: RecordedRequest
) -> str | None:
    """The first rule ``call`` fails against ``recorded``, said plainly; ``None`` if it matches."""
    if rules.method and recorded.method != call.method:
        return f"method differs: recorded {recorded.method}, got {call.method}"
    if rules.path and recorded.path != call.path:
        return f"path differs: recorded {recorded.path!r}, got {call.path!r}"
    if rules.query:
        names = {k for k, _ in recorded.query} | {k for k, _ in call.query}
        for name in sorted(names):
            have = [v for k, v in recorded.query if k == name]
            got = [v for k, v in call.query if k == name]
            if not _values_match(have, got):
                return f"query parameter {name!r} differs: recorded {have}, got {got}"
    if rules.body and recorded.body != call.body:
        parsed = _json(recorded.body)
        if parsed is _NOT_JSON or parsed != _json(call.body):
            return f"body differs: recorded {len(recorded.body)} bytes, got {len(call.body)} bytes"
    for name in rules.headers:
        have_h = recorded.headers.get(name, ())
        got_h = call.headers.get(name, ())
        if not _values_match(have_h, got_h):
            shown = [REDACTED if v == REDACTED else v for v in have_h]
            return f"header {name!r} differs: recorded {shown}, got {list(got_h)}"
    return None


class Replayer:
    """The interactions of one cassette, served to calls by the match rules (module docstring)."""

    def __init__(
        self, interactions: Sequence[Mapping[str, Any]], rules: CassetteMatch, name: str
    ) -> None:
        self.interactions = list(interactions)
        self.requests = [_recorded(i) for i in self.interactions]
        self.rules = rules
        #: the cassette's file, as messages name it.
        self.name = name
        # how many calls each group of matching interactions answered (by their indexes)
        self._served: dict[tuple[int, ...], int] = {}
        # the interactions a call may match, by what the method and path rules compare: a call
        # is checked against those only, not the whole cassette
        self._by_key: dict[tuple[str, str], list[int]] = {}
        for i, rec in enumerate(self.requests):
            self._by_key.setdefault(self._key(rec), []).append(i)

    def _key(self, request: RecordedRequest) -> tuple[str, str]:
        return (
            request.method if self.rules.method else "",
            request.path if self.rules.path else "",
        )

    def answer(self, call: RecordedRequest) -> Mapping[str, Any]:
        """The interaction that answers ``call``; raises :class:`NoMatch`."""
        found = tuple(
            i
            for i in self._by_key.get(self._key(call), ())
            if difference(self.rules, self.requests[i], call) is None
        )
        if not found:
            raise NoMatch(self._why_not(call))
        n = self._served.get(found, 0)
        self._served[found] = n + 1
        return self.interactions[found[min(n, len(found) - 1)]]

    def _why_not(self, call: RecordedRequest) -> str:
        shown = f"{call.method} {call.target}"
        if not self.requests:
            return f"{shown}: the cassette {self.name} has no interactions"

        def likeness(i: int) -> tuple[bool, float]:
            rec = self.requests[i]
            return rec.method == call.method, SequenceMatcher(None, rec.path, call.path).ratio()

        best = max(range(len(self.requests)), key=likeness)  # first of equals: max keeps it
        rec = self.requests[best]
        why = difference(self.rules, rec, call)
        return (
            f"{shown} matches no request recorded in {self.name}; closest: "
            f"{rec.method} {rec.target} (interaction {best + 1}): {why}"
        )
