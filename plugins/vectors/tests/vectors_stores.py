"""The stores under test, each set up the same way, and the sidecar config pointing at one.

:class:`StoreUnderTest` makes the namespaces ``docs`` and ``other`` on a backend (Pinecone
namespaces, Weaviate collections with a typed schema, Chroma collections) with the metric a
test asks for, and gives the ``vec`` upstream's config for it. Keys go by reference
(``{env: ...}``, set by the ``store_keys`` fixture); the Chroma under test runs without one.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import httpx

#: the variables the configs name for the stores' keys
KEY_ENV = {"pinecone": "VECTORS_TEST_PINECONE_KEY", "weaviate": "VECTORS_TEST_WEAVIATE_KEY"}
PINECONE_METRIC = {"cosine": "cosine", "dot": "dotproduct", "euclidean": "euclidean"}
WEAVIATE_METRIC = {"cosine": "cosine", "dot": "dot", "euclidean": "l2-squared"}
CHROMA_METRIC = {"cosine": "cosine", "dot": "ip", "euclidean": "l2"}
#: the typed schema a platform team would give the Weaviate collections
WEAVIATE_SCHEMA = {"genre": "text", "year": "int", "rating": "number", "new": "boolean"}


def http_json(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the test's own http:// server
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310
        return json.loads(r.read() or b"null")


@dataclass
class ChromaServer:
    url: str

    @property
    def collections(self) -> str:
        return f"{self.url}/api/v2/tenants/default_tenant/databases/default_database/collections"

    def create(self, name: str, space: str = "cosine") -> str:
        body = {"name": name, "configuration": {"hnsw": {"space": space}}}
        return str(http_json("POST", self.collections, body)["id"])


@dataclass
class StoreUnderTest:
    backend: str
    server: Any
    namespaces: dict[str, str]
    metric: str = "cosine"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def make(cls, backend: str, server: Any, suffix: str, metric: str = "cosine") -> StoreUnderTest:
        if backend == "pinecone":
            server.metric = PINECONE_METRIC[metric]
            names = {"docs": f"docs-{suffix}", "other": f"other-{suffix}"}
        elif backend == "weaviate":
            names = {"docs": f"Docs{suffix}", "other": f"Other{suffix}"}
            for name in names.values():
                server.create_class(name, WEAVIATE_METRIC[metric], WEAVIATE_SCHEMA)
        else:
            names = {"docs": f"docs-{suffix}", "other": f"other-{suffix}"}
            for name in names.values():
                server.create(name, CHROMA_METRIC[metric])
        return cls(backend, server, names, metric)

    def options(self, **extra: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "backend": self.backend,
            "url": self.server.url,
            "namespaces": self.namespaces,
            "default_namespace": "docs",
        }
        if self.backend in KEY_ENV:
            options["api_key"] = {"env": KEY_ENV[self.backend]}
        if self.backend != "pinecone":
            options["dimension"] = 3  # an empty collection cannot say
        return {**options, **extra}

    def config(self, **extra: Any) -> dict[str, Any]:
        return {
            "upstreams": {
                "vec": {"adapter": "vectors", "timeout": "10s", "options": self.options(**extra)}
            }
        }

    def seen(self) -> int | None:
        """Requests the store received so far (``None``: the real Chroma does not say)."""
        return None if self.backend == "chroma" else len(self.server.requests)


#: the records of the filter tests: every operator has a different answer on them
RECORDS = [
    {"id": "a", "vector": [1, 0, 0],
     "metadata": {"genre": "drama", "year": 2001, "rating": 4.5, "new": True}},
    {"id": "b", "vector": [0, 1, 0],
     "metadata": {"genre": "comedy", "year": 2010, "rating": 3.0, "new": False}},
    {"id": "c", "vector": [0, 0, 1],
     "metadata": {"genre": "drama", "year": 2019, "rating": 2.5, "new": True}},
    {"id": "d", "vector": [1, 1, 0],
     "metadata": {"genre": "horror", "year": 1999, "rating": 5.0, "new": False}},
]  # fmt: skip


async def call(
    port: int, verb: str, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """``POST /vec/<verb>`` with ``body`` as JSON (``GET`` without one), through the sidecar."""
    async with httpx.AsyncClient(timeout=20) as client:
        url = f"http://127.0.0.1:{port}/vec/{verb}"
        if body is None:
            return await client.get(url, headers=headers)
        return await client.post(url, json=body, headers=headers)


async def seed(port: int, namespace: str = "docs") -> None:
    """Upsert :data:`RECORDS` into ``namespace``."""
    r = await call(port, "upsert", {"namespace": namespace, "vectors": RECORDS})
    assert r.status_code == 200, r.text
    assert r.json() == {"namespace": namespace, "upserted": 4}
