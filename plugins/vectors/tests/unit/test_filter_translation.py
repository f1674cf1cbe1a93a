"""The filter language, parsed and translated into each store's, without sockets.

What each store receives for each operator is pinned here (the integration tests show the
stores then select the same records); so are the refusals and the folding of comparisons no
record can satisfy.
"""

from __future__ import annotations

from typing import Any

import pytest
from sidecar_vectors.filter_language import (
    NOTHING,
    All,
    AnyOf,
    Compare,
    FilterError,
    OneOf,
    parse_filter,
)
from sidecar_vectors.scores import from_chroma, from_pinecone, from_weaviate, metric_of
from sidecar_vectors.store_chroma import to_chroma
from sidecar_vectors.store_pinecone import to_pinecone
from sidecar_vectors.store_weaviate import Enum, gql, object_id, to_weaviate
from sidecar_vectors.vector_api import ApiError

WEAVIATE_KINDS = {
    "genre": frozenset({"text"}),
    "year": frozenset({"int"}),
    "rating": frozenset({"number"}),
    "new": frozenset({"boolean"}),
}
CHROMA_KINDS = {
    "genre": frozenset({"text"}),
    "year": frozenset({"int"}),
    "rating": frozenset({"number"}),
    "mixed": frozenset({"int", "number"}),
}

#: (our filter, Pinecone's, Chroma's, Weaviate's where as JSON)
CASES: list[tuple[dict[str, Any], Any, Any, Any]] = [
    (
        {"genre": "drama"},
        {"genre": {"$eq": "drama"}},
        {"genre": {"$eq": "drama"}},
        {"operator": "Equal", "path": ["genre"], "valueText": "drama"},
    ),
    (
        {"year": {"$gt": 2000}},
        {"year": {"$gt": 2000}},
        {"year": {"$gt": 2000}},
        {"operator": "GreaterThan", "path": ["year"], "valueInt": 2000},
    ),
    (
        {"year": {"$gte": 2000.5}},
        {"year": {"$gte": 2000.5}},
        {"year": {"$gte": 2001}},
        {"operator": "GreaterThanEqual", "path": ["year"], "valueInt": 2001},
    ),
    (
        {"rating": {"$lt": 3}},
        {"rating": {"$lt": 3}},
        {"rating": {"$lt": 3}},
        {"operator": "LessThan", "path": ["rating"], "valueNumber": 3.0},
    ),
    (
        {"year": {"$lte": 2010.9}},
        {"year": {"$lte": 2010.9}},
        {"year": {"$lte": 2010}},
        {"operator": "LessThanEqual", "path": ["year"], "valueInt": 2010},
    ),
    (
        {"genre": {"$in": ["a", "b"]}},
        {"genre": {"$in": ["a", "b"]}},
        {"genre": {"$in": ["a", "b"]}},
        {"operator": "ContainsAny", "path": ["genre"], "valueTextArray": ["a", "b"]},
    ),
    (
        {"rating": {"$in": [3, 4.5]}},
        {"rating": {"$in": [3, 4.5]}},
        {"rating": {"$in": [3.0, 4.5]}},
        {"operator": "ContainsAny", "path": ["rating"], "valueNumberArray": [3.0, 4.5]},
    ),
    (
        {"$and": [{"genre": "a"}, {"year": 1}]},
        {"$and": [{"genre": {"$eq": "a"}}, {"year": {"$eq": 1}}]},
        {"$and": [{"genre": {"$eq": "a"}}, {"year": {"$eq": 1}}]},
        {
            "operator": "And",
            "operands": [
                {"operator": "Equal", "path": ["genre"], "valueText": "a"},
                {"operator": "Equal", "path": ["year"], "valueInt": 1},
            ],
        },
    ),
    (
        {"$or": [{"genre": "a"}, {"new": True}]},
        {"$or": [{"genre": {"$eq": "a"}}, {"new": {"$eq": True}}]},
        {"$or": [{"genre": {"$eq": "a"}}, {"new": {"$eq": True}}]},
        {
            "operator": "Or",
            "operands": [
                {"operator": "Equal", "path": ["genre"], "valueText": "a"},
                {"operator": "Equal", "path": ["new"], "valueBoolean": True},
            ],
        },
    ),
]


@pytest.mark.parametrize(("ours", "pinecone", "chroma", "weaviate"), CASES)
def test_each_operator_becomes_the_stores_own(
    ours: dict[str, Any], pinecone: Any, chroma: Any, weaviate: Any
) -> None:
    """Every operator is sent as each store documents it (Weaviate typed by its schema)."""
    tree = parse_filter(ours)
    assert tree is not None
    assert to_pinecone(tree) == pinecone
    assert to_chroma(tree, CHROMA_KINDS) == chroma
    assert to_weaviate(tree, WEAVIATE_KINDS) == weaviate


def test_shorthands_parse_into_one_tree() -> None:
    """Several keys are an $and, a range pair two comparisons, a one-item $or its item."""
    assert parse_filter({"a": 1, "b": {"$gte": 2, "$lt": 3}}) == All(
        (Compare("a", "eq", 1), Compare("b", "gte", 2), Compare("b", "lt", 3))
    )
    assert parse_filter({"$or": [{"a": "x"}]}) == Compare("a", "eq", "x")
    assert parse_filter({"$or": [{"a": "x"}, {"b": {"$in": [1, 2]}}]}) == AnyOf(
        (Compare("a", "eq", "x"), OneOf("b", (1, 2)))
    )
    assert parse_filter(None) is None


@pytest.mark.parametrize(
    ("flt", "says"),
    [
        ({"a": {"$ne": 1}}, "unknown operator '$ne'"),
        ({"$not": {"a": 1}}, "unknown operator '$not'"),
        ({"a-b": 1}, "is not a field name"),
        ({"a": {"$gt": "x"}}, "compares numbers only"),
        ({"a": {"$gt": True}}, "compares numbers only"),
        ({"a": {"$in": []}}, "1 to 100 values"),
        ({"a": {"$in": ["x", 1]}}, "all strings or all numbers"),
        ({"a": [1]}, "expected a string, a number or a boolean"),
        ({"a": {}}, "expected a value or an operator object"),
        ({"$and": [{"a": 1}] * 17}, "1 to 16 filters"),
        ({"a": "x" * 1025}, "at most 1024 characters"),
        ([{"a": 1}], "expected a non-empty object"),
    ],
)
def test_what_is_outside_the_language_is_refused_with_where(flt: Any, says: str) -> None:
    """Operators outside the subset, odd values and oversized filters are refused, saying where."""
    with pytest.raises(FilterError, match=says.replace("$", r"\$")):
        parse_filter(flt)


def test_depth_and_size_are_bounded() -> None:
    """A filter nested past 8 levels or past 64 conditions is refused."""
    deep: dict[str, Any] = {"a": 1}
    for _ in range(8):
        deep = {"$and": [deep, {"b": 1}]}
    with pytest.raises(FilterError, match="nested deeper than 8"):
        parse_filter(deep)
    wide = {
        "$or": [{f"f{i}": 1, f"g{i}": 2, f"h{i}": 3, f"k{i}": 4, f"m{i}": 5} for i in range(14)]
    }
    with pytest.raises(FilterError, match="at most 64 conditions"):
        parse_filter(wide)


def test_comparisons_no_record_can_satisfy_are_folded_away() -> None:
    """An unknown field, another type or a fraction equal to integers matches nothing: the
    store is not asked (NOTHING), and an $or keeps its other branches."""
    for flt in ({"nope": 1}, {"year": "2010"}, {"year": 2010.5}, {"genre": {"$gt": 1}}):
        tree = parse_filter(flt)
        assert tree is not None
        assert to_weaviate(tree, WEAVIATE_KINDS) is NOTHING
    eq_fraction = parse_filter({"year": 2010.5})
    assert eq_fraction is not None and to_chroma(eq_fraction, CHROMA_KINDS) is NOTHING
    some = parse_filter({"$or": [{"nope": 1}, {"genre": "x"}]})
    assert some is not None
    assert to_weaviate(some, WEAVIATE_KINDS) == {
        "operator": "Equal",
        "path": ["genre"],
        "valueText": "x",
    }
    none = parse_filter({"$and": [{"nope": 1}, {"genre": "x"}]})
    assert none is not None and to_weaviate(none, WEAVIATE_KINDS) is NOTHING


def test_chroma_refuses_a_fraction_against_a_field_of_integers_and_fractions() -> None:
    """Chroma truncates a fraction compared with integers: on a mixed field that would be
    wrong, so the call is refused (400) instead of answered wrongly."""
    tree = parse_filter({"mixed": {"$lt": 2.5}})
    assert tree is not None
    with pytest.raises(ApiError, match="both integers and fractions"):
        to_chroma(tree, CHROMA_KINDS)
    whole = parse_filter({"mixed": {"$lt": 2.0}})
    assert whole is not None and to_chroma(whole, CHROMA_KINDS) == {"mixed": {"$lt": 2}}


def test_graphql_literals_and_object_ids() -> None:
    """Where objects become GraphQL input literals (enums bare, strings escaped); ids are
    stable UUIDv5s of the app's id."""
    where = {"operator": Enum("Equal"), "path": ["genre"], "valueText": 'a "b"\n'}
    assert gql(where) == '{operator:Equal,path:["genre"],valueText:"a \\"b\\"\\n"}'
    assert gql({"vector": [1.0, -0.5], "on": True}) == "{vector:[1.0,-0.5],on:true}"
    assert object_id("a") == object_id("a") != object_id("b")


@pytest.mark.parametrize(
    ("backend", "names"),
    [
        ("pinecone", {"cosine": "cosine", "dotproduct": "dot", "euclidean": "euclidean"}),
        ("chroma", {"cosine": "cosine", "ip": "dot", "l2": "euclidean"}),
        ("weaviate", {"cosine": "cosine", "dot": "dot", "l2-squared": "euclidean"}),
    ],
)
def test_each_stores_metric_names_are_known(backend: str, names: dict[str, str]) -> None:
    """Each store's metric names map to ours; Weaviate's hamming is not one."""
    for theirs, ours in names.items():
        assert metric_of(backend, theirs) == ours
    assert metric_of("weaviate", "hamming") is None


def test_scores_are_converted_exactly() -> None:
    """A cosine similarity of 0.8, a dot product of 2 and a squared distance of 3, as each
    store reports them, are the same normalised score."""
    assert from_pinecone("cosine", 0.8) == 0.8 == pytest.approx(from_chroma("cosine", 0.2))
    assert from_weaviate("cosine", 0.2) == pytest.approx(0.8)
    assert from_pinecone("dot", 2.0) == from_chroma("dot", -1.0) == from_weaviate("dot", -2.0)
    assert from_pinecone("euclidean", 3.0) == from_chroma("euclidean", 3.0) == -3.0
    assert from_weaviate("euclidean", 3.0) == -3.0
