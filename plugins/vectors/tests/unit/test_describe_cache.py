"""The describe cache without sockets: kept for its time, a failure not kept, forgotten when
an upsert changes what the store would say."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sidecar_vectors.config import VectorsOptions
from sidecar_vectors.describe import Catalog
from sidecar_vectors.store import Described
from sidecar_vectors.vector_api import ApiError, Record


class CountingStore:
    """Answers describe from a list of outcomes (a Described or an exception), counting."""

    def __init__(self, *outcomes: Described | Exception) -> None:
        self.outcomes = list(outcomes)
        self.asked = 0

    async def describe(self, name: str) -> Described:
        self.asked += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def upsert(self, ns: Described, records: Sequence[Record]) -> None: ...
    async def query(self, *args: Any) -> list[Any]: ...
    async def fetch(self, *args: Any) -> list[Record]: ...
    async def delete(self, ns: Described, ids: Sequence[str]) -> None: ...
    async def aclose(self) -> None: ...


def options(**extra: Any) -> VectorsOptions:
    base = {"backend": "chroma", "url": "http://127.0.0.1:1", "namespaces": {"docs": "docs"}}
    return VectorsOptions.model_validate({**base, **extra})


def described(dimension: int | None = 3, **kinds: frozenset[str]) -> Described:
    return Described("docs", dimension, "cosine", "cosine", "id-1", properties=kinds)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_an_answer_is_kept_for_describe_ttl_then_asked_again() -> None:
    """Within describe_ttl the store is asked once; after it, once more."""
    store, clock = CountingStore(described()), Clock()
    catalog = Catalog(store, options(describe_ttl=60), clock)
    for _ in range(3):
        assert (await catalog.resolve(None)).dimension == 3
    clock.now = 61
    await catalog.resolve("docs")
    assert store.asked == 2


async def test_a_failed_question_is_not_kept() -> None:
    """A store that failed to answer is asked again on the next call."""
    store = CountingStore(ApiError(502, "store_error", "down"), described())
    catalog = Catalog(store, options(), Clock())
    with pytest.raises(ApiError):
        await catalog.resolve(None)
    assert (await catalog.resolve(None)).metric == "cosine"
    assert store.asked == 2


async def test_an_upsert_with_a_new_field_or_kind_forgets_the_answer() -> None:
    """A new field, or a known field given another kind of value, makes the next call ask."""
    store = CountingStore(described(year=frozenset({"int"})))
    catalog = Catalog(store, options(), Clock())
    ns = await catalog.resolve(None)
    catalog.after_upsert(ns, [Record("a", (1.0, 0.0, 0.0), {"year": 2001})])
    await catalog.resolve(None)
    assert store.asked == 1  # nothing new: still cached
    catalog.after_upsert(ns, [Record("a", (1.0, 0.0, 0.0), {"year": 2001.5})])
    await catalog.resolve(None)
    catalog.after_upsert(ns, [Record("a", (1.0, 0.0, 0.0), {"genre": "x"})])
    await catalog.resolve(None)
    assert store.asked == 3


async def test_the_config_and_the_store_must_agree() -> None:
    """A dimension or a metric the store contradicts, or one it cannot normalise, is refused."""
    with pytest.raises(ApiError, match="the store holds vectors of 3"):
        await Catalog(CountingStore(described()), options(dimension=4), Clock()).resolve(None)
    with pytest.raises(ApiError, match="the config says dot"):
        await Catalog(CountingStore(described()), options(metric="dot"), Clock()).resolve(None)
    hamming = Described("docs", 3, None, "hamming", "docs")
    with pytest.raises(ApiError, match="'hamming'"):
        await Catalog(CountingStore(hamming), options(metric="cosine"), Clock()).resolve(None)
    empty = await Catalog(CountingStore(described(None)), options(dimension=5), Clock()).resolve(
        None
    )
    assert empty.dimension == 5
