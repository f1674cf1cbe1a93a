"""A V3 consumer pact written from a recorded cassette (``sidecar contract pact-from-cassette``).

Each recorded interaction becomes one pact interaction with the values as recorded (no matching
rules: add them by hand where the provider's values may vary). Only ``content-type`` and
``accept`` request headers and the response's ``content-type`` are kept: the rest are the
transport's, or credentials the sidecar injects anyway (a ``<redacted>`` value is never written).
A JSON body is written as JSON, a text body as text; a binary or truncated body cannot be
compared as recorded and is left out, with the interaction named in :attr:`Conversion.notes`.
"""

from __future__ import annotations

__all__ = ["Conversion", "pact_from_interactions"]

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from ..cassettes.file import REDACTED

_REQUEST_HEADERS = ("content-type", "accept")


@dataclass(frozen=True)
class Conversion:
    pact: dict[str, Any]
    #: what was left out, per interaction.
    notes: tuple[str, ...]


def _headers(part: Mapping[str, Any], keep: Sequence[str]) -> dict[str, str]:
    out = {}
    for name, value in part.get("headers") or []:
        name = str(name).lower()
        if name in keep and value != REDACTED and name not in out:
            out[name] = str(value)
    return out


def _body(part: Mapping[str, Any], headers: Mapping[str, str]) -> tuple[bool, Any]:
    """``(present, value)``: absent when empty, binary or truncated."""
    if part.get("truncated") or "body_base64" in part:
        return False, None
    text = part.get("body", "")
    if not isinstance(text, str):
        return True, text  # a hand-written cassette's JSON
    if not text:
        return False, None
    media = headers.get("content-type", "").partition(";")[0].strip()
    if media == "application/json" or media.endswith("+json"):
        try:
            return True, json.loads(text)
        except (ValueError, RecursionError):  # (nested too deep: kept as text)
            pass
    return True, text


def pact_from_interactions(
    interactions: Sequence[Mapping[str, Any]], consumer: str, provider: str
) -> Conversion:
    """The pact of ``interactions`` (cassette JSON objects) between ``consumer`` and
    ``provider``."""
    out, notes, seen = [], [], dict[str, int]()
    for recorded in interactions:
        req, resp = recorded["request"], recorded["response"]
        query = str(req.get("query") or "")
        name = f"{req['method']} {req['path']}" + (f"?{query}" if query else "")
        seen[name] = seen.get(name, 0) + 1
        description = name if seen[name] == 1 else f"{name} (#{seen[name]})"
        request: dict[str, Any] = {"method": req["method"], "path": req["path"]}
        if query:
            values: dict[str, list[str]] = {}
            for key, value in parse_qsl(query, keep_blank_values=True):
                if value != REDACTED:  # an injected credential: the sidecar adds it
                    values.setdefault(key, []).append(value)
            if values:
                request["query"] = values
        request_headers = _headers(req, _REQUEST_HEADERS)
        if request_headers:
            request["headers"] = request_headers
        present, body = _body(req, request_headers)
        if present:
            request["body"] = body
        elif req.get("truncated") or "body_base64" in req:
            notes.append(f"{description}: request body left out (binary or truncated)")
        response: dict[str, Any] = {"status": resp["status"]}
        response_headers = _headers(resp, ("content-type",))
        if response_headers:
            response["headers"] = response_headers
        present, body = _body(resp, response_headers)
        if present:
            response["body"] = body
        elif resp.get("truncated") or "body_base64" in resp:
            notes.append(f"{description}: response body left out (binary or truncated)")
        out.append({"description": description, "request": request, "response": response})
    pact = {
        "consumer": {"name": consumer},
        "provider": {"name": provider},
        "interactions": out,
        "metadata": {"pactSpecification": {"version": "3.0.0"}},
    }
    return Conversion(pact, tuple(notes))
