"""The one metadata filter language of the vectors API, parsed into a small tree.

A filter is JSON, the subset every supported store can answer the same way::

    {"genre": "drama"}                              equality (shorthand of {"$eq": ...})
    {"year": {"$gte": 2000, "$lt": 2010}}           ranges: $gt $gte $lt $lte (numbers only)
    {"genre": {"$in": ["drama", "comedy"]}}         one of (all strings or all numbers)
    {"$and": [f, ...]}, {"$or": [f, ...]}           combinations (1 to 16 filters each)

Several keys in one object all must hold (an implicit ``$and``). A comparison matches only
records that have the field with a value of the compared type. Bounded: depth 8, 64 nodes,
100 values in an ``$in``, strings of 1024 characters. Each backend translates the tree
(:mod:`.store_pinecone`, :mod:`.store_weaviate`, :mod:`.store_chroma`). Not here: ``$ne``,
``$nin``, ``$exists``, text matching: stores disagree on records missing the field.
"""

from __future__ import annotations

__all__ = [
    "NOTHING",
    "All",
    "AnyOf",
    "Compare",
    "Filter",
    "FilterError",
    "Nothing",
    "OneOf",
    "Op",
    "Scalar",
    "all_of",
    "any_of",
    "integer_bound",
    "is_number",
    "parse_filter",
]

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

Scalar = str | int | float | bool
Op = Literal["eq", "gt", "gte", "lt", "lte"]

FIELD = re.compile(r"^[A-Za-z][_0-9A-Za-z]{0,63}$")
MAX_DEPTH = 8
MAX_NODES = 64
MAX_IN = 100
MAX_PARTS = 16
MAX_STRING = 1024
_OPS: dict[str, Op] = {"$eq": "eq", "$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}


class FilterError(ValueError):
    """A filter outside the language; the message says where (``filter.$and[1].year``)."""


@dataclass(frozen=True)
class Compare:
    field: str
    op: Op
    value: Scalar


@dataclass(frozen=True)
class OneOf:
    field: str
    values: tuple[str, ...] | tuple[int | float, ...]


@dataclass(frozen=True)
class All:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Filter, ...]


Filter = Compare | OneOf | All | AnyOf


class Nothing:
    """A translated filter no record can match (a field the store has never seen, a value of
    another type): the store is not asked, the answer is empty."""


NOTHING = Nothing()

#: a store's own form of a translated filter
T = TypeVar("T")


def all_of(parts: Sequence[T | Nothing], join: Callable[[list[T]], T]) -> T | Nothing:
    """``and`` of translated parts: nothing when one part matches nothing, else ``join``."""
    kept = [p for p in parts if not isinstance(p, Nothing)]
    return join(kept) if len(kept) == len(parts) else NOTHING


def any_of(parts: Sequence[T | Nothing], join: Callable[[list[T]], T]) -> T | Nothing:
    """``or`` of translated parts: the parts that can match, ``join``ed; nothing if none can."""
    kept = [p for p in parts if not isinstance(p, Nothing)]
    return join(kept) if kept else NOTHING


def integer_bound(op: Op, value: float) -> int | None:
    """The bound selecting the same integers as ``op value`` for a fractional ``value``
    (``> 2.5`` is ``> 2``, ``>= 2.5`` is ``>= 3``); ``None`` for ``eq``: no integer is equal.
    Stores that compare an integer field with an integer only (Weaviate's ``valueInt``) or
    truncate a fraction (Chroma) need it."""
    if op in ("gt", "lte"):
        return math.floor(value)
    if op in ("gte", "lt"):
        return math.ceil(value)
    return None


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar(value: object, where: str) -> Scalar:
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise FilterError(f"{where}: strings are at most {MAX_STRING} characters")
        return value
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(f"{where}: a number must be finite")
        return value
    raise FilterError(f"{where}: expected a string, a number or a boolean")


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0

    def count(self, where: str) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FilterError(f"{where}: a filter has at most {MAX_NODES} conditions")

    def node(self, value: object, where: str, depth: int) -> Filter:
        if depth > MAX_DEPTH:
            raise FilterError(f"{where}: nested deeper than {MAX_DEPTH}")
        if not isinstance(value, dict) or not value:
            raise FilterError(f"{where}: expected a non-empty object")
        parts: list[Filter] = []
        for key, item in value.items():
            if key in ("$and", "$or"):
                parts.append(self.combination(key, item, f"{where}.{key}", depth))
            elif key.startswith("$"):
                raise FilterError(f"{where}: unknown operator {key[:32]!r} here")
            elif not FIELD.match(key):
                raise FilterError(f"{where}: {key[:64]!r} is not a field name (letters, digits, _)")
            else:
                parts.extend(self.field(key, item, f"{where}.{key}"))
        return parts[0] if len(parts) == 1 else All(tuple(parts))

    def combination(self, key: str, items: object, where: str, depth: int) -> Filter:
        self.count(where)
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_PARTS:
            raise FilterError(f"{where}: expected a list of 1 to {MAX_PARTS} filters")
        parts = tuple(self.node(p, f"{where}[{i}]", depth + 1) for i, p in enumerate(items))
        if len(parts) == 1:
            return parts[0]
        return All(parts) if key == "$and" else AnyOf(parts)

    def field(self, name: str, condition: object, where: str) -> list[Filter]:
        if not isinstance(condition, dict):
            self.count(where)
            return [Compare(name, "eq", _scalar(condition, where))]
        if not condition:
            raise FilterError(f"{where}: expected a value or an operator object")
        out: list[Filter] = []
        for op, value in condition.items():
            at = f"{where}.{op}"
            self.count(at)
            if op == "$in":
                out.append(OneOf(name, _values(value, at)))
            elif op in _OPS:
                scalar = _scalar(value, at)
                if op != "$eq" and not is_number(scalar):
                    raise FilterError(f"{at}: a range compares numbers only")
                out.append(Compare(name, _OPS[op], scalar))
            else:
                raise FilterError(
                    f"{where}: unknown operator {op[:32]!r} (use $eq $gt $gte $lt $lte $in)"
                )
        return out


def _values(value: object, where: str) -> tuple[str, ...] | tuple[int | float, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN:
        raise FilterError(f"{where}: expected a list of 1 to {MAX_IN} values")
    scalars = [_scalar(v, where) for v in value]
    if all(isinstance(v, str) for v in scalars):
        return tuple(str(v) for v in scalars)
    if all(is_number(v) for v in scalars):
        return tuple(v for v in scalars if not isinstance(v, str | bool))
    raise FilterError(f"{where}: the values are all strings or all numbers")


def parse_filter(value: object) -> Filter | None:
    """The tree of a request's ``filter`` (``None``: no filter); raises :class:`FilterError`."""
    if value is None:
        return None
    return _Parser().node(value, "filter", 1)
