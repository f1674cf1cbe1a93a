"""Similarity metrics and the one score every answer carries, whichever store computed it.

Every match has ``score``, where **higher is always more similar**, defined by the metric:

- ``cosine``: the cosine similarity, in [-1, 1] (1: same direction);
- ``dot``: the dot product of the two vectors;
- ``euclidean``: minus the **squared** Euclidean distance (0: the same vector).

Stores report different numbers for the same thing; each conversion below is exact, not a
rescaling: Pinecone's ``score`` (cosine similarity, dot product, squared distance), Chroma's
``distances`` (cosine: 1 - similarity; ip: 1 - dot product; l2: squared distance) and Weaviate's
``_additional.distance`` (cosine: 1 - similarity; dot: minus the dot product; l2-squared:
squared distance). Not here: which metric an index uses (the store says, :mod:`.describe`).
"""

from __future__ import annotations

__all__ = ["Metric", "from_chroma", "from_pinecone", "from_weaviate", "metric_of"]

from typing import Literal

Metric = Literal["cosine", "dot", "euclidean"]

#: each store's name for each metric
_NAMES: dict[str, dict[str, Metric]] = {
    "pinecone": {"cosine": "cosine", "dotproduct": "dot", "euclidean": "euclidean"},
    "chroma": {"cosine": "cosine", "ip": "dot", "l2": "euclidean"},
    "weaviate": {"cosine": "cosine", "dot": "dot", "l2-squared": "euclidean"},
}


def metric_of(backend: str, name: str) -> Metric | None:
    """Our metric for a store's metric name, ``None`` for one we cannot normalise
    (Weaviate's ``hamming`` and ``manhattan``)."""
    return _NAMES[backend].get(name)


def from_pinecone(metric: Metric, score: float) -> float:
    """Pinecone's ``score`` is the similarity for cosine and dotproduct, and the squared
    Euclidean distance for euclidean (lower is closer)."""
    return -score if metric == "euclidean" else score


def from_chroma(metric: Metric, distance: float) -> float:
    """Chroma's ``distances``: cosine ``1 - cos``, ip ``1 - dot``, l2 the squared distance."""
    return -distance if metric == "euclidean" else 1.0 - distance


def from_weaviate(metric: Metric, distance: float) -> float:
    """Weaviate's ``distance``: cosine ``1 - cos``, dot ``-dot``, l2-squared the squared
    distance. (``certainty``, cosine only, is ``1 - distance / 2``; it is not used.)"""
    if metric == "cosine":
        return 1.0 - distance
    return -distance
