"""The operations an allow-listed upstream lets through, read from a JSON file at start-up and
on each reload.

Two shapes are read: Apollo's persisted-query manifest, ``{"format":
"apollo-persisted-query-manifest", "version": 1, "operations": [{"id", "name", "type", "body"}]}``
(also any ``{"operations": [...]}`` whose entries have a ``body`` and/or a ``name``), and a flat
``{"<sha256>": "<document>"}`` map (Relay's). An entry with a ``body`` allows exactly that
document (its ``id``, when given, must be its SHA-256); an entry with only a ``name`` allows any
document whose operation has that name, a weaker rule for teams that cannot ship their
documents. Not here: checking a request against the list (:mod:`.gate`).
"""

from __future__ import annotations

__all__ = ["AllowList", "load_allow_list"]

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import OPERATION_NAME
from .persisted import sha256_hex


@dataclass(frozen=True)
class AllowList:
    """Documents by SHA-256; operation names allowed whatever their document; the names of
    every listed operation (metric labels)."""

    documents: dict[str, str]
    names_only: frozenset[str]
    names: frozenset[str]


def _entry(index: int, entry: Any) -> tuple[str | None, str | None]:
    where = f"operations[{index}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object with a body and/or a name")
    body, name, digest = entry.get("body"), entry.get("name"), entry.get("id")
    if body is not None and not isinstance(body, str):
        raise ValueError(f"{where}.body: expected a string")
    if name is not None and not (isinstance(name, str) and re.match(OPERATION_NAME, name)):
        raise ValueError(f"{where}.name: expected a GraphQL operation name")
    if body is None and name is None:
        raise ValueError(f"{where}: has neither a body nor a name")
    if body is not None and digest is not None and digest != sha256_hex(body):
        raise ValueError(f"{where}.id: is not the SHA-256 of its body")
    return body, name


def load_allow_list(path: str) -> AllowList:
    """The list in ``path``; a ``ValueError`` saying what is wrong (an ``OSError`` becomes one)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    except (ValueError, RecursionError):
        raise ValueError(f"{path} is not JSON") from None
    documents: dict[str, str] = {}
    names_only: set[str] = set()
    names: set[str] = set()
    if isinstance(data, dict) and isinstance(data.get("operations"), list):
        for i, entry in enumerate(data["operations"]):
            body, name = _entry(i, entry)
            if name is not None:
                names.add(name)
            if body is not None:
                documents[sha256_hex(body)] = body
            elif name is not None:
                names_only.add(name)
    elif isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
        for digest, body in data.items():
            if sha256_hex(body) != digest.lower():
                raise ValueError(f"{digest[:64]!r}: is not the SHA-256 of its document")
            documents[digest.lower()] = body
    else:
        raise ValueError(
            f'{path}: expected {{"operations": [...]}} or a {{"<sha256>": "<document>"}} map'
        )
    return AllowList(documents, frozenset(names_only), frozenset(names))
