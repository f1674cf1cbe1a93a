"""One API, three stores: every test here runs against Pinecone, Weaviate and Chroma alike.

Through a real sidecar (``sidecar_factory``) with the ``vectors`` upstream pointed at the test
Pinecone, the test Weaviate or the real Chroma, the app sees the same answers: upsert then
fetch, query ordering and scores, every filter operator, delete, describe, namespaces, the
dimension checked before the store is called.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import sidecar_vectors
from vectors_stores import RECORDS, StoreUnderTest, call, seed

FILTERS: list[tuple[str, dict[str, Any], set[str]]] = [
    ("eq-string", {"genre": "drama"}, {"a", "c"}),
    ("eq-explicit", {"genre": {"$eq": "comedy"}}, {"b"}),
    ("eq-number", {"year": 2010}, {"b"}),
    ("eq-bool", {"new": True}, {"a", "c"}),
    ("gt", {"year": {"$gt": 2001}}, {"b", "c"}),
    ("gte", {"year": {"$gte": 2001}}, {"a", "b", "c"}),
    ("lt", {"rating": {"$lt": 3}}, {"c"}),
    ("lte", {"rating": {"$lte": 3}}, {"b", "c"}),
    ("range-fraction-on-int", {"year": {"$gt": 2009.5, "$lt": 2019.5}}, {"b", "c"}),
    ("in-strings", {"genre": {"$in": ["comedy", "horror"]}}, {"b", "d"}),
    ("in-numbers", {"year": {"$in": [1999, 2019]}}, {"c", "d"}),
    ("in-mixed-numbers", {"rating": {"$in": [3, 4.5]}}, {"a", "b"}),
    ("and", {"$and": [{"genre": "drama"}, {"year": {"$gt": 2010}}]}, {"c"}),
    ("or", {"$or": [{"genre": "comedy"}, {"rating": {"$gte": 5}}]}, {"b", "d"}),
    ("implicit-and", {"genre": "drama", "new": True, "year": {"$lt": 2010}}, {"a"}),
    ("nested", {"$or": [{"$and": [{"genre": "drama"}, {"new": False}]}, {"year": 1999}]}, {"d"}),
    ("unknown-field", {"nope": "x"}, set()),
    ("other-type", {"year": "2010"}, set()),
    ("or-with-unknown-field", {"$or": [{"nope": 1}, {"genre": "horror"}]}, {"d"}),
]


async def test_upsert_then_fetch_gives_back_vectors_and_metadata(
    store: StoreUnderTest, sidecar_factory: Any
) -> None:
    """What was upserted is fetched back by id, in the order asked, absent ids left out."""
    async with sidecar_factory(store.config(), plugins=[sidecar_vectors]) as s:
        await seed(s.http_port)
        r = await call(s.http_port, "fetch", {"ids": ["c", "zz", "a"]})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "namespace": "docs",
        "vectors": [
            {"id": "c", "metadata": RECORDS[2]["metadata"], "vector": [0.0, 0.0, 1.0]},
            {"id": "a", "metadata": RECORDS[0]["metadata"], "vector": [1.0, 0.0, 0.0]},
        ],
    }


async def test_upsert_replaces_a_record_of_the_same_id(
    store: StoreUnderTest, sidecar_factory: Any
) -> None:
    """A second upsert of an id replaces its vector and metadata."""
    async with sidecar_factory(store.config(), plugins=[sidecar_vectors]) as s:
        await seed(s.http_port)
        again = {"id": "a", "vector": [0, 1, 1], "metadata": {"genre": "news"}}
        assert (await call(s.http_port, "upsert", {"vectors": [again]})).status_code == 200
        r = await call(s.http_port, "fetch", {"ids": ["a"], "include_vectors": False})
    assert r.json()["vectors"] == [{"id": "a", "metadata": {"genre": "news"}}]


async def test_every_filter_operator_selects_the_same_records(
    store: StoreUnderTest, sidecar_factory: Any
) -> None:
    """Each operator of the filter language selects the same records on every store."""
    wrong: dict[str, Any] = {}
    async with sidecar_factory(store.config(), plugins=[sidecar_vectors]) as s:
        await seed(s.http_port)
        for name, flt, expected in FILTERS:  # one sidecar and one seeding for all of them
            r = await call(s.http_port, "query", {"vector": [1, 1, 1], "top_k": 10, "filter": flt})
            got = {m["id"] for m in r.json()["matches"]} if r.status_code == 200 else r.text
            if got != expected:
                wrong[name] = got
    assert wrong == {}


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
async def test_scores_are_normalised_and_ordered_best_first(
    backend: str, request: pytest.FixtureRequest, sidecar_factory: Any, metric: str
) -> None:
    """Scores are the metric's similarity (higher is closer), the same number on every store."""
    request.getfixturevalue("store_keys")
    server = request.getfixturevalue(
        {"pinecone": "fake_pinecone", "weaviate": "fake_weaviate", "chroma": "chroma_server"}[
            backend
        ]
    )
    store = StoreUnderTest.make(backend, server, f"m{metric[:3]}{id(request) % 10_000}", metric)
    query = [1.0, 0.5, 0.0]
    async with sidecar_factory(store.config(), plugins=[sidecar_vectors]) as s:
        await seed(s.http_port)
        r = await call(s.http_port, "query", {"vector": query, "top_k": 4})
        described = await call(s.http_port, "describe")
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["metric"] == metric and described.json()["metric"] == metric
    expected = {rec["id"]: similarity(metric, query, rec["vector"]) for rec in RECORDS}
    got = {m["id"]: m["score"] for m in answer["matches"]}
    assert got.keys() == expected.keys()
    for rid, score in got.items():
        assert math.isclose(score, expected[rid], abs_tol=1e-4), (rid, score, expected[rid])
    scores = [m["score"] for m in answer["matches"]]
    assert scores == sorted(scores, reverse=True)


def similarity(metric: str, a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    if metric == "dot":
        return dot
    if metric == "euclidean":
        return -sum((x - y) ** 2 for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


async def test_query_top_k_include_flags_and_namespaces(
    store: StoreUnderTest, sidecar_factory: Any
) -> None:
    """top_k bounds the matches; vectors and metadata come only when asked; namespaces are apart."""
    async with sidecar_factory(store.config(), plugins=[sidecar_vectors]) as s:
        await seed(s.http_port)
        other = {"id": "x", "vector": [1, 0, 0], "metadata": {"genre": "other"}}
        assert (
            await call(s.http_port, "upsert", {"namespace": "other", "vectors": [other]})
        ).status_code == 200
        bare = await call(
            s.http_port, "query", {"vector": [1, 0, 0], "top_k": 2, "include_metadata": False}
        )
        full = await call(
            s.http_port,
            "query",
            {"namespace": "other", "vector": [1, 0, 0], "top_k": 5, "include_vectors": True},
        )
    assert [sorted(m) for m in bare.json()["matches"]] == [["id", "score"]] * 2
    assert bare.json()["matches"][0]["id"] == "a"
    assert full.json()["namespace"] == "other"
    [x] = full.json()["matches"]
    assert x["id"] == "x" and x["metadata"] == {"genre": "other"} and x["vector"] == [1, 0, 0]


async def test_delete_removes_only_the_ids_named(
    store: StoreUnderTest, sidecar_factory: Any
) -> None:
    """Deleted ids are gone from fetch and query; the others stay; unknown ids are no error."""
    async with sidecar_factory(store.config(), plugins=[sidecar_vectors]) as s:
        await seed(s.http_port)
        r = await call(s.http_port, "delete", {"ids": ["a", "c", "nope"]})
        fetched = await call(s.http_port, "fetch", {"ids": ["a", "b", "c", "d"]})
        queried = await call(s.http_port, "query", {"vector": [1, 0, 0], "top_k": 10})
    assert r.status_code == 200 and r.json() == {"namespace": "docs", "deleted": 3}
    assert [v["id"] for v in fetched.json()["vectors"]] == ["b", "d"]
    assert {m["id"] for m in queried.json()["matches"]} == {"b", "d"}


async def test_a_vector_of_another_dimension_is_refused_before_the_store_is_called(
    store: StoreUnderTest, sidecar_factory: Any
) -> None:
    """A wrong-length vector is a 400 dimension_mismatch, and the store never sees the call."""
    async with sidecar_factory(store.config(), plugins=[sidecar_vectors]) as s:
        await seed(s.http_port)
        await call(s.http_port, "describe")  # what the upsert taught the store, now known
        before = store.seen()
        up = await call(s.http_port, "upsert", {"vectors": [{"id": "e", "vector": [1, 2]}]})
        q = await call(s.http_port, "query", {"vector": [1, 2, 3, 4]})
        after = store.seen()
        fetched = await call(s.http_port, "fetch", {"ids": ["e"]})
    for r in (up, q):
        assert r.status_code == 400 and r.headers["x-sidecar-error"] == "dimension_mismatch"
    assert "holds vectors of 3" in up.json()["error"]["message"]
    assert before == after  # described once, cached: nothing more was asked (None for Chroma)
    assert fetched.json()["vectors"] == []


async def test_describe_and_unknown_namespace(store: StoreUnderTest, sidecar_factory: Any) -> None:
    """describe says backend, dimension and metric; a namespace not configured is a 404."""
    async with sidecar_factory(store.config(), plugins=[sidecar_vectors]) as s:
        await seed(s.http_port)
        d = await call(s.http_port, "describe")
        unknown = await call(s.http_port, "query", {"namespace": "nope", "vector": [1, 0, 0]})
    assert d.json() == {
        "backend": store.backend,
        "namespace": "docs",
        "dimension": 3,
        "metric": "cosine",
        "namespaces": ["docs", "other"],
    }
    assert unknown.status_code == 404
    assert unknown.headers["x-sidecar-error"] == "unknown_namespace"
