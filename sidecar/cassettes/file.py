"""The cassette file: one JSON object per line, each an interaction with an upstream.

An interaction is ``{"request": {...}, "response": {...}, "duration_ms": ..., "recorded_at":
..., "upstream": ...}``. A request has ``method``, ``path``, ``query`` (the raw query string),
``headers`` (``[[name, value], ...]``, names lower-case) and a body; a response has ``status``,
``headers`` and a body. A body is ``"body": TEXT`` when it is UTF-8, else ``"body_base64":
B64``; a body longer than the recorder's bound is cut there and marked ``"truncated": true``.

Appending is one ``write`` of one whole line to a file opened with ``O_APPEND``, so a line is
never interleaved with another writer's, and a reader never sees half an interaction unless the
process died mid-write (the reader names the line it could not parse). Reading also accepts one
JSON document ``{"interactions": [...]}``, for cassettes written by hand.

Not here: which headers are redacted (the recorder decides, :mod:`.handler`), matching
(:mod:`.matching`).
"""

from __future__ import annotations

__all__ = [
    "REDACTED",
    "CassetteError",
    "append_interaction",
    "body_field",
    "body_of",
    "load_interactions",
]

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: What a redacted value is written as.
REDACTED = "<redacted>"
#: Interactions read from one cassette at most (replay keeps them all in memory).
MAX_INTERACTIONS = 100_000


class CassetteError(ValueError):
    """A cassette that cannot be read or written; the message names the file (never a value)."""


def body_field(data: bytes, limit: int) -> dict[str, Any]:
    """``data`` as a cassette body: ``{"body": TEXT}`` or ``{"body_base64": ...}``, cut at
    ``limit`` bytes with ``"truncated": true``."""
    out: dict[str, Any] = {}
    if len(data) > limit:
        data, out["truncated"] = data[:limit], True
    try:
        out["body"] = data.decode("utf-8")
    except UnicodeDecodeError:
        out["body_base64"] = base64.b64encode(data).decode("ascii")
    return out


def body_of(part: Mapping[str, Any]) -> bytes:
    """The body bytes of a recorded request or response."""
    encoded = part.get("body_base64")
    if isinstance(encoded, str):
        return base64.b64decode(encoded)
    text = part.get("body", "")
    if isinstance(text, str):
        return text.encode("utf-8")
    # a hand-written cassette may give a JSON body as JSON
    return json.dumps(text).encode("utf-8")


def append_interaction(path: str | os.PathLike[str], interaction: Mapping[str, Any]) -> int:
    """Append ``interaction`` as one line; returns the file's size after it."""
    line = (json.dumps(interaction, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        written = os.write(fd, line)
        if written != len(line):  # a full disk: say so rather than leave half a line unnoticed
            raise CassetteError(f"cassette {path}: wrote {written} of {len(line)} bytes")
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def load_interactions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every interaction in the cassette at ``path`` (JSON lines, or one JSON document)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CassetteError(f"cassette {path}: cannot be read: {e}") from None
    try:
        doc = json.loads(text)  # a whole document; JSON lines fail here with "extra data"
    except (ValueError, RecursionError):  # (or nested too deep: read line by line then)
        doc = None
    if isinstance(doc, dict) and "interactions" in doc:
        found = doc["interactions"]
        if not isinstance(found, list):
            raise CassetteError(f"cassette {path}: 'interactions' is not a list")
        return [_checked(path, i + 1, item) for i, item in enumerate(found[:MAX_INTERACTIONS])]
    out: list[dict[str, Any]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise CassetteError(f"cassette {path}: line {number} is not JSON: {e}") from None
        out.append(_checked(path, number, item))
        if len(out) > MAX_INTERACTIONS:
            raise CassetteError(f"cassette {path}: more than {MAX_INTERACTIONS} interactions")
    return out


def _checked(path: str | os.PathLike[str], where: int, item: Any) -> dict[str, Any]:
    """``item`` if it has the shape of an interaction, else the reason, naming where it is."""
    if not isinstance(item, dict):
        raise CassetteError(f"cassette {path}: interaction {where} is not an object")
    request, response = item.get("request"), item.get("response")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        raise CassetteError(f"cassette {path}: interaction {where} has no request.method")
    if not isinstance(request.get("path"), str):
        raise CassetteError(f"cassette {path}: interaction {where} has no request.path")
    if not isinstance(response, dict) or not isinstance(response.get("status"), int):
        raise CassetteError(f"cassette {path}: interaction {where} has no response.status")
    if not 100 <= response["status"] <= 999:
        raise CassetteError(f"cassette {path}: interaction {where}: response.status not 100-999")
    for name, part in (("request", request), ("response", response)):
        # replay and pact-from-cassette read these as they are: a hand-written cassette's
        # other shapes are refused here, naming where, rather than failing a call later
        headers = part.get("headers", [])
        if not isinstance(headers, list) or not all(_is_pair(h) for h in headers):
            raise CassetteError(
                f"cassette {path}: interaction {where}: {name}.headers is not [[name, value], ...]"
            )
        encoded = part.get("body_base64")
        if encoded is not None and not _is_base64(encoded):
            raise CassetteError(
                f"cassette {path}: interaction {where}: {name}.body_base64 is not base64"
            )
    return item


def _is_pair(header: Any) -> bool:
    return (
        isinstance(header, list)
        and len(header) == 2
        and isinstance(header[0], str)
        and isinstance(header[1], str)
    )


def _is_base64(value: Any) -> bool:
    try:
        base64.b64decode(value)  # as :func:`body_of` reads it
    except (TypeError, ValueError):  # binascii.Error is a ValueError
        return False
    return True
