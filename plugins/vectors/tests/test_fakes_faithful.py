"""The test Pinecone speaks Pinecone's wire format: the official ``pinecone`` client parses it.

No sidecar here. Every request the vectors plugin sends to Pinecone (upsert, query with a
filter, fetch, delete, describe_index_stats) is sent by the ``pinecone`` SDK itself to the test
server, and its typed answers and exceptions are checked, so a fake that drifts from the real
format fails here first. (Weaviate's official client, ``weaviate-client`` 4, cannot be installed
beside the sidecar: it pins older grpcio, protobuf and httpx. Its REST shapes are checked by
hand against Weaviate's documentation; see docs/vectors.md.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pinecone
import pytest
from pinecone.errors.exceptions import PineconeApiException, UnauthorizedError
from vectors_fake_pinecone import PINECONE_TEST_KEY, FakePinecone


@pytest.fixture
def index(fake_pinecone: FakePinecone) -> Iterator[pinecone.Index]:
    yield pinecone.Index(host=fake_pinecone.url, api_key=PINECONE_TEST_KEY)


def test_upsert_query_with_filter_fetch_delete_round_trip(
    index: pinecone.Index, fake_pinecone: FakePinecone
) -> None:
    """The SDK's upsert, filtered query, fetch and delete all parse the test server's answers."""
    up = index.upsert(
        vectors=[
            {"id": "a", "values": [1.0, 0.0, 0.0], "metadata": {"genre": "drama", "year": 2001}},
            {"id": "b", "values": [0.0, 1.0, 0.0], "metadata": {"genre": "comedy", "year": 2010}},
        ],
        namespace="ns",
    )
    assert up.upserted_count == 2
    found = index.query(
        vector=[1.0, 0.1, 0.0],
        top_k=5,
        namespace="ns",
        filter={"$and": [{"year": {"$gte": 2000}}, {"genre": {"$in": ["drama"]}}]},
        include_metadata=True,
        include_values=True,
    )
    [match] = found.matches
    assert match.id == "a" and match.score == pytest.approx(0.995037, abs=1e-6)
    assert match.metadata == {"genre": "drama", "year": 2001.0}
    assert list(match.values) == [1.0, 0.0, 0.0]
    fetched = index.fetch(ids=["a", "zz"], namespace="ns")
    assert set(fetched.vectors) == {"a"} and fetched.namespace == "ns"
    index.delete(ids=["a"], namespace="ns")
    assert set(index.fetch(ids=["a", "b"], namespace="ns").vectors) == {"b"}
    seen = fake_pinecone.requests[0]
    assert seen.headers["api-key"] == PINECONE_TEST_KEY
    assert seen.path == "/vectors/upsert"


def test_describe_index_stats_parses_dimension_metric_and_namespaces(
    index: pinecone.Index,
) -> None:
    """describe_index_stats gives the dimension, metric and per-namespace counts."""
    index.upsert(vectors=[("x", [1.0, 2.0, 3.0])], namespace="")
    stats = index.describe_index_stats()
    assert stats.dimension == 3 and stats.metric == "cosine"
    assert stats.namespaces["__default__"].vector_count == 1
    assert stats.total_vector_count == 1


def test_a_wrong_key_and_a_wrong_dimension_are_the_sdks_errors(
    fake_pinecone: FakePinecone,
) -> None:
    """A wrong key is the SDK's UnauthorizedError; a wrong dimension its 400 with the message."""
    wrong = pinecone.Index(host=fake_pinecone.url, api_key="pcsk_wrong")
    with pytest.raises(UnauthorizedError):
        wrong.describe_index_stats()
    right = pinecone.Index(host=fake_pinecone.url, api_key=PINECONE_TEST_KEY)
    with pytest.raises(PineconeApiException) as refused:
        right.upsert(vectors=[("x", [1.0, 2.0])])
    assert refused.value.status_code == 400
    assert "dimension 2 does not match" in str(refused.value)
