"""The message envelope: CloudEvents 1.0, read from and written to HTTP in both modes.

An app publishes in **binary** mode (the data is the body, the attributes are ``ce-*`` headers),
in **structured** mode (``content-type: application/cloudevents+json``, the whole event is the
JSON body), or sends a plain body with no ``ce-*`` header at all (then every attribute is filled).
:func:`complete` fills what the app left out (``id``, ``time``, ``source``, ``type``,
``specversion``, the ``correlationid`` of the correlation extension, the ``traceparent`` of the
distributed-tracing extension) and keeps every attribute the app set.

What a broker stores is the structured JSON (:func:`to_structured`, :func:`from_structured`);
what the app is delivered is binary mode (:func:`to_binary`). Not here: brokers, HTTP calls.
"""

from __future__ import annotations

__all__ = [
    "STRUCTURED",
    "CloudEvent",
    "EnvelopeError",
    "complete",
    "from_http",
    "from_structured",
    "to_binary",
    "to_structured",
]

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

#: the media type of an event in structured mode (JSON format)
STRUCTURED = "application/cloudevents+json"
SPEC_VERSION = "1.0"
#: attribute names the spec allows: lower-case letters and digits (20 characters recommended;
#: longer ones are refused so a header name stays bounded)
NAME = re.compile(r"^[a-z0-9]{1,40}$")
#: characters kept as they are in a ``ce-*`` header value (printable ASCII but ``"`` and ``%``)
HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


class EnvelopeError(ValueError):
    """What the app sent is no valid CloudEvent; the message says why (never the data)."""


@dataclass
class CloudEvent:
    """One event: its context attributes (extensions included) and its data, as bytes."""

    #: ``id``, ``source``, ``type``, ``specversion``, ``time``, ``datacontenttype``, extensions;
    #: JSON scalars (extensions in structured mode may be numbers or booleans)
    attributes: dict[str, Any] = field(default_factory=dict)
    data: bytes | None = None

    @property
    def id(self) -> str:
        return str(self.attributes.get("id", ""))

    @property
    def content_type(self) -> str | None:
        value = self.attributes.get("datacontenttype")
        return None if value is None else str(value)


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return True  # the JSON format's rule: no datacontenttype means application/json
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def _check_names(attributes: Iterable[str]) -> None:
    for name in attributes:
        if not NAME.match(name):
            raise EnvelopeError(f"attribute name {name[:40]!r} is not lower-case letters, digits")


def from_http(headers: Iterable[tuple[str, str]], body: bytes) -> CloudEvent:
    """The event an app's request carries: structured when its content type says so, binary
    when it has ``ce-*`` headers, otherwise the body is the data of a new event."""
    pairs = [(k.lower(), v) for k, v in headers]
    content_type = next((v for k, v in pairs if k == "content-type"), None)
    if content_type is not None and content_type.split(";", 1)[0].strip().lower() == STRUCTURED:
        return from_structured(body)
    attributes: dict[str, Any] = {}
    for key, value in pairs:
        if key.startswith("ce-"):
            try:
                attributes[key[3:]] = unquote(value, errors="strict")
            except UnicodeDecodeError:
                raise EnvelopeError(f"header {key[:43]!r} is not percent-encoded UTF-8") from None
    _check_names(attributes)
    if "data" in attributes or "data_base64" in attributes:
        raise EnvelopeError("'data' is not an attribute: send it as the body")
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    return CloudEvent(attributes, body)


def from_structured(body: bytes) -> CloudEvent:
    """An event from its JSON format (``application/cloudevents+json``)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError("a structured event must be a JSON object") from None
    if not isinstance(doc, dict):
        raise EnvelopeError("a structured event must be a JSON object")
    data: bytes | None = None
    if "data_base64" in doc:
        if "data" in doc:
            raise EnvelopeError("an event has 'data' or 'data_base64', not both")
        encoded = doc.pop("data_base64")
        try:
            data = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeError("'data_base64' is not base64") from None
    elif "data" in doc:
        value = doc.pop("data")
        if isinstance(value, str) and not _is_json(doc.get("datacontenttype")):
            data = value.encode()
        else:
            data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    for name, value in doc.items():
        if isinstance(value, dict | list):
            raise EnvelopeError(f"attribute {name[:40]!r} is not a string, number or boolean")
    _check_names(doc)
    return CloudEvent(doc, data)


def to_structured(event: CloudEvent) -> bytes:
    """The event's JSON format: JSON data inline as ``data``, text as a string, anything else
    as ``data_base64``."""
    doc: dict[str, Any] = dict(event.attributes)
    if event.data is not None:
        content_type = event.content_type
        if _is_json(content_type):
            try:
                doc["data"] = json.loads(event.data)
            except (ValueError, UnicodeDecodeError):
                doc["data_base64"] = base64.b64encode(event.data).decode()
        elif content_type is not None and content_type.lower().startswith("text/"):
            try:
                doc["data"] = event.data.decode()
            except UnicodeDecodeError:
                doc["data_base64"] = base64.b64encode(event.data).decode()
        else:
            doc["data_base64"] = base64.b64encode(event.data).decode()
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return quote(text, safe=HEADER_SAFE)


def to_binary(event: CloudEvent) -> tuple[list[tuple[str, str]], bytes]:
    """The event in HTTP binary mode: ``ce-*`` headers (values percent-encoded as the HTTP
    binding says), ``content-type`` from ``datacontenttype``, the data as the body."""
    headers: list[tuple[str, str]] = []
    for name, value in event.attributes.items():
        if name == "datacontenttype":
            headers.append(("content-type", str(value)))
        else:
            headers.append((f"ce-{name}", _header_value(value)))
    return headers, event.data or b""


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def complete(
    event: CloudEvent,
    *,
    source: str,
    type_: str,
    traceparent: str | None = None,
) -> CloudEvent:
    """``event`` with what the app left out filled in; what it set is kept as it is.

    ``correlationid`` defaults to the event's own id (the first event of a conversation);
    ``causationid`` is only ever what the app set (the id of the event it handled).
    """
    attrs = event.attributes
    version = attrs.setdefault("specversion", SPEC_VERSION)
    if version != SPEC_VERSION:
        raise EnvelopeError(f"specversion {str(version)[:16]!r} is not {SPEC_VERSION}")
    attrs.setdefault("id", str(uuid.uuid4()))
    attrs.setdefault("source", source)
    attrs.setdefault("type", type_)
    attrs.setdefault("time", now_rfc3339())
    attrs.setdefault("correlationid", attrs["id"])
    if traceparent is not None:
        attrs.setdefault("traceparent", traceparent)
    for required in ("id", "source", "type"):
        if not str(attrs[required]):
            raise EnvelopeError(f"attribute {required!r} is empty")
    return event
