"""How a GraphQL answer ended, for the circuit breaker, retry and the plugin's metrics.

A server answers most failures with ``200`` and a body ``{"errors": [...]}`` without ``data``
(or with ``"data": null``): the request was not served. Such an answer gets the conditions
``graphql-errors``, ``graphql-<code>`` for each ``errors[].extensions.code``
(``INTERNAL_SERVER_ERROR`` → ``graphql-internal-server-error``), and the conditions of the
HTTP status its codes map to (``code_statuses``; ``INTERNAL_SERVER_ERROR`` → 500 → ``500``,
``5xx``), so the breaker's default ``failure_on`` (``5xx``) and retry's default ``on`` (``503``)
apply without new config. An answer with ``data`` and ``errors`` is a partial success, not a
failure. Any other status and every transport error are classified as the HTTP adapter does.
Not here: the answer itself, which reaches the app unchanged.
"""

from __future__ import annotations

__all__ = ["Outcome", "make_classifier", "outcome_of"]

import json
import re
from dataclasses import dataclass

from sidecar import Classifier, Response, classify_http

from .config import GraphQLOptions

#: at most this many codes of one answer become conditions and labels
MAX_CODES = 8
_NOT_CONDITION = re.compile(r"[^a-z0-9-]")


@dataclass(frozen=True)
class Outcome:
    """A 200's body read: whether it has ``errors``, whether it has ``data``, its codes."""

    errors: bool
    data: bool
    codes: tuple[str, ...]

    @property
    def failed(self) -> bool:
        return self.errors and not self.data


OK = Outcome(False, True, ())


def outcome_of(body: bytes) -> Outcome:
    """What a JSON answer says; one not JSON, or without ``errors``, is :data:`OK` (the
    substring test keeps a plain success to one scan of its bytes)."""
    if b'"errors"' not in body:
        return OK
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return OK
    if not isinstance(data, dict):
        return OK
    errors = data.get("errors")
    if not isinstance(errors, list) or not errors:
        return OK
    codes: list[str] = []
    for error in errors:
        ext = error.get("extensions") if isinstance(error, dict) else None
        code = ext.get("code") if isinstance(ext, dict) else None
        if isinstance(code, str) and code not in codes and len(codes) < MAX_CODES:
            codes.append(code[:64])
    return Outcome(True, data.get("data") is not None, tuple(codes))


def condition_of_code(code: str) -> str:
    return "graphql-" + _NOT_CONDITION.sub("-", code.lower().replace("_", "-"))


def make_classifier(options: GraphQLOptions) -> Classifier:
    """The classifier of one upstream (its ``code_statuses``)."""
    statuses = options.statuses()
    uncoded = options.uncoded_status

    def classify_graphql(response: Response | None, error: BaseException | None) -> tuple[str, ...]:
        if response is None or response.status != 200 or not isinstance(response.body, bytes):
            return classify_http(response, error)
        outcome = outcome_of(response.body)
        if not outcome.failed:
            return ()
        known = [statuses[c] for c in outcome.codes if c in statuses]
        status = max(known) if known else uncoded
        return (
            "graphql-errors",
            *(condition_of_code(c) for c in outcome.codes),
            str(status),
            f"{status // 100}xx",
        )

    return classify_graphql
