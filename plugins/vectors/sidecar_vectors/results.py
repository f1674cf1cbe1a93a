"""Store answers read into the API's values: numbers, vectors and metadata, defensively.

A store's answer is data from the network: a field may be missing or of another type. These
readers take what is usable and drop the rest, so one odd record never fails a whole call.
Metadata numbers that are integral come back as integers whatever the store kept (Pinecone
keeps every number as a float), so one record reads the same from every backend. Not here:
scores (:mod:`.scores`).
"""

from __future__ import annotations

__all__ = ["metadata_out", "number", "vector_out"]

import math

from .filter_language import Scalar


def number(value: object) -> float:
    """A score or distance; a missing or odd one is NaN, never an exception."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return math.nan


def vector_out(value: object) -> tuple[float, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(float(x) for x in value if isinstance(x, int | float) and not isinstance(x, bool))


def metadata_out(value: object, skip: frozenset[str] = frozenset()) -> dict[str, Scalar]:
    """The scalar fields of a store's metadata (``skip``: the store's own bookkeeping)."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, Scalar] = {}
    for key, item in value.items():
        if not isinstance(key, str) or key in skip or item is None:
            continue
        if isinstance(item, float) and item.is_integer() and abs(item) < 2**53:
            out[key] = int(item)
        elif isinstance(item, str | bool | int | float):
            out[key] = item
    return out
