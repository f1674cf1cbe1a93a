"""A pact file read into typed interactions: :func:`load_pact`.

Understands the Pact specification's V2, V3 and V4 layouts of HTTP interactions: the request
(method, path, query, headers, body), the response (status, headers, body) and the response's
matching rules, put in one shape (V3's: ``{category: {path: RuleSet}}``, categories ``status``,
``header`` and ``body``). V4 interactions of other kinds (messages) are listed as skipped, with
their description. Provider states are ``(name, params)`` pairs (V2's one ``providerState``
becomes a state without params). Generators are not applied: the request is sent as written.

Not here: what the rules mean (:mod:`.rules`), sending anything (:mod:`.verify`).
"""

from __future__ import annotations

__all__ = [
    "Pact",
    "PactError",
    "PactInteraction",
    "PactRequest",
    "PactResponse",
    "RuleSet",
    "load_pact",
    "parse_pact",
]

import base64
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

#: A pact file larger than this is refused (it is read whole).
MAX_PACT_BYTES = 64 * 1024 * 1024


class PactError(ValueError):
    """A pact file that cannot be read; the message names the file and the place."""


@dataclass(frozen=True)
class RuleSet:
    """The matchers of one path, and how they combine (``AND``: all, ``OR``: any)."""

    matchers: tuple[Mapping[str, Any], ...]
    combine: str = "AND"


#: Rules by category (``status``, ``header``, ``body``), then by path or header name.
Rules = Mapping[str, Mapping[str, RuleSet]]


@dataclass(frozen=True)
class PactRequest:
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    #: the body to send (``None``: none).
    body: bytes | None = None


@dataclass(frozen=True)
class PactResponse:
    status: int
    #: expected headers, names lower-case.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: whether a body is expected at all (a pact without one accepts any body).
    has_body: bool = False
    #: the expected body: a JSON value when :attr:`json`, else text.
    body: Any = None
    json: bool = False
    rules: Rules = field(default_factory=dict)


@dataclass(frozen=True)
class PactInteraction:
    description: str
    states: tuple[tuple[str, Mapping[str, Any]], ...]
    request: PactRequest
    response: PactResponse


@dataclass(frozen=True)
class Pact:
    consumer: str
    provider: str
    #: the specification version the file says it follows (``"3.0.0"``), ``""`` when unsaid.
    version: str
    interactions: tuple[PactInteraction, ...]
    #: interactions not verified (V4 messages), by description and kind.
    skipped: tuple[str, ...] = ()


def load_pact(path: str | os.PathLike[str]) -> Pact:
    """The pact at ``path``; raises :class:`PactError`."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_PACT_BYTES:
            raise PactError(f"{path}: {size} bytes, more than {MAX_PACT_BYTES}")
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:  # (JSON too deep)
        if isinstance(e, PactError):
            raise
        raise PactError(f"{path}: cannot be read as JSON: {e}") from None
    return parse_pact(doc, str(path))


def parse_pact(doc: Any, name: str = "<pact>") -> Pact:
    """A pact from its JSON document."""
    if not isinstance(doc, dict):
        raise PactError(f"{name}: not a JSON object")
    meta = doc.get("metadata") or {}
    spec = meta.get("pactSpecification") or meta.get("pact-specification") or {}
    version = str(spec.get("version", "")) if isinstance(spec, dict) else ""
    items = doc.get("interactions")
    if not isinstance(items, list):
        raise PactError(f"{name}: no 'interactions' list")
    out, skipped = [], []
    for n, item in enumerate(items, 1):
        where = f"{name}: interactions[{n - 1}]"
        if not isinstance(item, dict):
            raise PactError(f"{where}: not an object")
        kind = item.get("type", "Synchronous/HTTP")
        description = str(item.get("description", f"interaction {n}"))
        if kind != "Synchronous/HTTP":
            skipped.append(f"{description} ({kind})")
            continue
        try:
            out.append(_interaction(item, description, where))
        except PactError:
            raise
        except _FIELD_ERRORS as e:
            raise PactError(f"{where}: {type(e).__name__}: {e}") from None
    return Pact(
        consumer=_name(doc.get("consumer")),
        provider=_name(doc.get("provider")),
        version=version,
        interactions=tuple(out),
        skipped=tuple(skipped),
    )


#: what reading a field of the wrong type or value raises (a status "abc", headers as a list,
#: JSON content nested too deep...): the pact cannot be used
_FIELD_ERRORS = (ValueError, TypeError, AttributeError, OverflowError, RecursionError)


def _name(party: Any) -> str:
    return str(party.get("name", "")) if isinstance(party, dict) else ""


def _interaction(item: Mapping[str, Any], description: str, where: str) -> PactInteraction:
    request, response = item.get("request"), item.get("response")
    if not isinstance(request, dict) or not isinstance(response, dict):
        raise PactError(f"{where}: needs a 'request' and a 'response' object")
    states: list[tuple[str, Mapping[str, Any]]] = []
    for state in item.get("providerStates") or []:
        if isinstance(state, dict) and "name" in state:
            states.append((str(state["name"]), dict(state.get("params") or {})))
    if isinstance(item.get("providerState"), str):  # V2
        states.append((item["providerState"], {}))
    return PactInteraction(description, tuple(states), _request(request), _response(response))


def _headers(raw: Any) -> list[tuple[str, str]]:
    """Headers of any version: ``{name: value}`` or, in V4, ``{name: [values]}``."""
    out: list[tuple[str, str]] = []
    for name, value in (raw or {}).items():
        if isinstance(value, list):
            out.append((str(name), ", ".join(str(v) for v in value)))
        else:
            out.append((str(name), str(value)))
    return out


def _query(raw: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(raw, str):  # V2: the query string
        return tuple(parse_qsl(raw, keep_blank_values=True))
    out: list[tuple[str, str]] = []
    for name, values in (raw or {}).items():
        for value in values if isinstance(values, list) else [values]:
            out.append((str(name), str(value)))
    return tuple(out)


def _content_type(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() == "content-type":
            return value.lower()
    return ""


def _is_json_type(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip()
    return media == "application/json" or media.endswith("+json")


#: The keys of a V4 body object (``{"content": ..., "contentType": ..., "encoded": ...}``).
_V4_BODY_KEYS = frozenset({"content", "contentType", "contentTypeHint", "encoded"})


def _body(part: Mapping[str, Any], headers: list[tuple[str, str]]) -> tuple[bool, Any, bool]:
    """``(present, value, is_json)`` of a request or response body, any version."""
    if "body" not in part:
        return False, None, False
    body = part["body"]
    content_type = _content_type(headers)
    if isinstance(body, dict) and "content" in body and set(body) <= _V4_BODY_KEYS:
        # V4: {"content": ..., "contentType": ..., "encoded": false | "base64" | "json"}
        content_type = str(body.get("contentType") or content_type).lower()
        encoded, content = body.get("encoded"), body["content"]
        if encoded == "base64" or encoded is True:
            return True, base64.b64decode(str(content)).decode("utf-8", "replace"), False
        if encoded == "json" and isinstance(content, str):
            return True, json.loads(content), True
        if _is_json_type(content_type) or not isinstance(content, str):
            return True, content, True
        return True, content, False
    if _is_json_type(content_type) or not isinstance(body, str):
        return True, body, True
    return True, body, False


def _request(raw: Mapping[str, Any]) -> PactRequest:
    headers = _headers(raw.get("headers"))
    present, body, is_json = _body(raw, headers)
    data: bytes | None = None
    if present and body is not None:
        data = json.dumps(body).encode() if is_json else str(body).encode()
    return PactRequest(
        method=str(raw.get("method", "GET")).upper(),
        path=str(raw.get("path", "/")),
        query=_query(raw.get("query")),
        headers=tuple(headers),
        body=data,
    )


def _response(raw: Mapping[str, Any]) -> PactResponse:
    headers = _headers(raw.get("headers"))
    present, body, is_json = _body(raw, headers)
    return PactResponse(
        status=int(raw.get("status", 200)),
        headers={k.lower(): v for k, v in headers},
        has_body=present,
        body=body,
        json=is_json,
        rules=_rules(raw.get("matchingRules")),
    )


def _rule_set(raw: Any) -> RuleSet:
    if isinstance(raw, dict) and isinstance(raw.get("matchers"), list):
        rules = RuleSet(
            tuple(m for m in raw["matchers"] if isinstance(m, dict)),
            str(raw.get("combine", "AND")).upper(),
        )
    else:
        rules = RuleSet((raw,) if isinstance(raw, dict) else ())
    for matcher in rules.matchers:
        if matcher.get("match") == "regex":
            regex = str(matcher.get("regex", ""))
            try:
                re.compile(regex)
            except re.error as e:
                raise ValueError(f"regex /{regex[:80]}/: {e}") from None
    return rules


def _rules(raw: Any) -> dict[str, dict[str, RuleSet]]:
    """Matching rules of any version in V3's shape."""
    out: dict[str, dict[str, RuleSet]] = {"status": {}, "header": {}, "body": {}}
    if not isinstance(raw, dict):
        return out
    if any(k.startswith("$") for k in raw):  # V2: {"$.body.a": {...}, "$.headers.X": {...}}
        for key, rule in raw.items():
            if key == "$.body" or key.startswith(("$.body.", "$.body[")):
                out["body"]["$" + key[len("$.body") :]] = _rule_set(rule)
            elif key.startswith("$.headers."):
                out["header"][key[len("$.headers.") :].lower()] = _rule_set(rule)
            elif key == "$.status":
                out["status"]["$"] = _rule_set(rule)
        return out
    for category, paths in raw.items():
        target = {"headers": "header"}.get(category, category)
        if target not in out:
            continue  # path, query: requests are sent as written
        if target == "status" and isinstance(paths, dict) and "matchers" in paths:
            out["status"]["$"] = _rule_set(paths)
            continue
        for path, rule in (paths or {}).items():
            key = str(path)
            if target == "header":  # a header's name, sometimes written as a path
                key = key.removeprefix("$.").lower()
            out[target][key] = _rule_set(rule)
    return out
