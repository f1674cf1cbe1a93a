"""The test Weaviate's schema answers: a class as ``GET /v1/schema/{class}`` shows it, whole
(index, inverted index, sharding and replication settings: the official client reads them)."""

from __future__ import annotations

from typing import Any


def class_json(name: str, distance: str, properties: dict[str, str]) -> dict[str, Any]:
    """A class as ``GET /v1/schema/{class}`` shows it (Weaviate 1.28, no vectorizer)."""

    return {
        "class": name,
        "invertedIndexConfig": {
            "bm25": {"b": 0.75, "k1": 1.2},
            "cleanupIntervalSeconds": 60,
            "stopwords": {"additions": None, "preset": "en", "removals": None},
        },
        "multiTenancyConfig": {
            "autoTenantActivation": False,
            "autoTenantCreation": False,
            "enabled": False,
        },
        "properties": [_property(p, t) for p, t in properties.items()],
        "replicationConfig": {
            "asyncEnabled": False,
            "deletionStrategy": "NoAutomatedResolution",
            "factor": 1,
        },
        "shardingConfig": {
            "actualCount": 1,
            "actualVirtualCount": 128,
            "desiredCount": 1,
            "desiredVirtualCount": 128,
            "function": "murmur3",
            "key": "_id",
            "strategy": "hash",
            "virtualPerPhysical": 128,
        },
        "vectorIndexConfig": {
            "bq": {"enabled": False},
            "cleanupIntervalSeconds": 300,
            "distance": distance,
            "dynamicEfFactor": 8,
            "dynamicEfMax": 500,
            "dynamicEfMin": 100,
            "ef": -1,
            "efConstruction": 128,
            "filterStrategy": "sweeping",
            "flatSearchCutoff": 40000,
            "maxConnections": 32,
            "pq": {
                "bitCompression": False,
                "centroids": 256,
                "enabled": False,
                "encoder": {"distribution": "log-normal", "type": "kmeans"},
                "segments": 0,
                "trainingLimit": 100000,
            },
            "skip": False,
            "vectorCacheMaxObjects": 1000000000000,
        },
        "vectorIndexType": "hnsw",
        "vectorizer": "none",
    }


def _property(name: str, kind: str) -> dict[str, Any]:
    """A property as the schema shows it: text is searchable and tokenized by word."""
    prop: dict[str, Any] = {
        "dataType": [kind],
        "indexFilterable": True,
        "indexRangeFilters": False,
        "indexSearchable": kind == "text",
        "name": name,
    }
    if kind == "text":
        prop["tokenization"] = "word"
    return prop
