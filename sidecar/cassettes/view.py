"""A cassette as tests read it: :class:`Cassette` of :class:`Interaction` (``sidecar.testing``).

Read-only views over the file's JSON (:mod:`.file`), with the lookups a test asserts on: a header
of the request or the response, the bodies as bytes or JSON, and a check that no secret was
written. Not here: recording or replaying (:mod:`.handler`).
"""

from __future__ import annotations

__all__ = ["Cassette", "Interaction"]

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .file import body_of, load_interactions


def _header(headers: Any, name: str) -> str | None:
    name = name.lower()
    for pair in headers or []:
        if str(pair[0]).lower() == name:
            return str(pair[1])
    return None


@dataclass(frozen=True)
class Interaction:
    """One recorded call: ``raw`` is its JSON object."""

    raw: Mapping[str, Any]

    @property
    def method(self) -> str:
        return str(self.raw["request"]["method"])

    @property
    def path(self) -> str:
        return str(self.raw["request"]["path"])

    @property
    def query(self) -> str:
        return str(self.raw["request"].get("query") or "")

    @property
    def status(self) -> int:
        return int(self.raw["response"]["status"])

    @property
    def duration_ms(self) -> float:
        return float(self.raw.get("duration_ms", 0.0))

    @property
    def request_body(self) -> bytes:
        return body_of(self.raw["request"])

    @property
    def response_body(self) -> bytes:
        return body_of(self.raw["response"])

    def response_json(self) -> Any:
        return json.loads(self.response_body)

    def request_header(self, name: str) -> str | None:
        """The first recorded value of request header ``name`` (``None``: not recorded)."""
        return _header(self.raw["request"].get("headers"), name)

    def response_header(self, name: str) -> str | None:
        return _header(self.raw["response"].get("headers"), name)


class Cassette:
    """The interactions of a cassette file, in recorded order."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.interactions = [Interaction(i) for i in load_interactions(path)]

    def __iter__(self) -> Iterator[Interaction]:
        return iter(self.interactions)

    def __len__(self) -> int:
        return len(self.interactions)

    def find(self, method: str, path: str) -> list[Interaction]:
        """The interactions of ``method`` on ``path``, in recorded order."""
        return [i for i in self.interactions if i.method == method.upper() and i.path == path]

    def assert_free_of(self, *secrets: str) -> None:
        """Fail naming the interaction holding any of ``secrets`` (never printing it)."""
        text = self.path.read_text(encoding="utf-8")
        for n, secret in enumerate(secrets):
            if secret and secret in text:
                line = next(i for i, raw in enumerate(text.splitlines(), 1) if secret in raw)
                raise AssertionError(f"{self.path}: secret #{n + 1} is written at line {line}")
