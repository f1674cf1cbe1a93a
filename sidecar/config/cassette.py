"""``upstreams.<name>.cassette:``: record an upstream's calls to a file, or replay them from it.

Only the settings live here; the wrapper that records or replays is :mod:`sidecar.cassettes`.
Never on by default: an upstream without ``cassette`` pays nothing for it.
"""

from __future__ import annotations

__all__ = ["CassetteConfig", "CassetteMatch"]

from typing import Literal

from pydantic import Field

from .base import Model
from .names import HeaderName
from .types import Size


class CassetteMatch(Model):
    """``cassette.match:``: what a replayed call must share with a recorded one."""

    method: bool = True
    path: bool = True
    #: the query's parameters, in any order (each name's values in order).
    query: bool = True
    #: the body's bytes (JSON bodies compared as parsed JSON).
    body: bool = False
    #: request headers whose values must be equal (a value recorded as ``<redacted>`` matches
    #: any value: it only has to be there).
    headers: list[HeaderName] = []


class CassetteConfig(Model):
    """``upstreams.<name>.cassette:``: ``record`` forwards and appends each interaction to
    ``path``; ``replay`` answers from ``path`` and never calls the upstream."""

    mode: Literal["record", "replay"]
    #: the cassette file (JSON lines; replay also reads one JSON document ``{"interactions":
    #: [...]}``).
    path: str = Field(min_length=1)
    #: headers whose values are written as ``<redacted>``, beside the ones always redacted
    #: (``authorization``, ``proxy-authorization``, ``cookie``, ``set-cookie``, ``x-api-key``,
    #: and every credential the sidecar injected).
    redact_headers: list[HeaderName] = []
    match: CassetteMatch = CassetteMatch()
    #: bytes of each body kept; a longer body is recorded cut, with ``"truncated": true``.
    max_body: Size = Field(1024 * 1024, ge=0, le=64 * 1024 * 1024)
    #: the file's size past which recording refuses calls (507 ``cassette_full``).
    max_size: Size = Field(64 * 1024 * 1024, ge=1024, le=16 * 1024 * 1024 * 1024)
