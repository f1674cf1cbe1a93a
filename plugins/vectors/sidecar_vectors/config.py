"""The ``vectors`` adapter's options (``upstreams.<u>.options``), validated by ``sidecar check``.

One upstream is one store: its backend (``pinecone``, ``weaviate`` or ``chroma``) with where it
is and its key by secret reference, the app's namespaces mapped to the store's own (a Pinecone
namespace, a Weaviate collection, a Chroma collection), and the bounds every call is held to.
A misspelt key, a key written inline or an unusable value is a config error with its key path.
Not here: reading the key (:mod:`.adapter`), what the store itself says about an index
(dimension, metric: :mod:`.describe`).
"""

from __future__ import annotations

__all__ = ["Backend", "VectorsOptions", "NAMESPACE", "STORE_NAME"]

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from sidecar import Duration, Model, SecretRef, Size

from .scores import Metric

#: an app-facing namespace name: it is a metric label and part of error messages
NAMESPACE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
#: a store-side name: a Pinecone namespace, a Chroma collection (3+ characters, Chroma's rule)
#: or a Weaviate collection (a GraphQL name starting with a capital, Weaviate's rule)
STORE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
WEAVIATE_CLASS = re.compile(r"^[A-Z][_0-9A-Za-z]{0,127}$")
CHROMA_COLLECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")
PROPERTY = r"^[A-Za-z][_0-9A-Za-z]{0,63}$"


def _by_reference(value: object) -> object:
    """A key is a reference; anything else is refused without repeating it."""
    if isinstance(value, dict | SecretRef):
        return value
    raise ValueError(
        "a key is given by reference, {env: NAME} or {file: PATH}, never inline "
        "(the value is not repeated here)"
    )


KeyByReference = Annotated[SecretRef, BeforeValidator(_by_reference)]
Backend = Literal["pinecone", "weaviate", "chroma"]


class VectorsOptions(Model):
    """``upstreams.<u>.options`` of an upstream with ``adapter: vectors``."""

    backend: Backend
    #: Pinecone: the index host (``https://<index>-<project>.svc.<env>.pinecone.io``);
    #: Weaviate: the server (``https://<cluster>.weaviate.cloud``); Chroma: the server
    #: (``http://127.0.0.1:8000``). No path: the backend adds its own.
    url: str = Field(pattern=r"^https?://[^\s/@?#]+/?$")
    #: the store's key by reference (``{env: NAME}`` or ``{file: PATH}``), sent as Pinecone's
    #: ``Api-Key``, Weaviate's ``Authorization: Bearer`` or Chroma's ``x-chroma-token``.
    #: Required for Pinecone; a local Weaviate or Chroma may run without one.
    api_key: KeyByReference | None = None
    #: app namespace → the store's: a Pinecone namespace (``""`` is Pinecone's default one), a
    #: Weaviate collection, a Chroma collection. Only these are reachable.
    namespaces: dict[str, str] = Field(min_length=1, max_length=256)
    #: the namespace of a call that names none (one of ``namespaces``; the only one when there
    #: is a single namespace).
    default_namespace: str | None = None
    #: the vectors' length. Checked against what the store reports; needed where the store
    #: cannot report it (an empty Weaviate collection, an empty Chroma collection).
    dimension: int | None = Field(None, ge=1, le=20_000)
    #: the metric, checked against what the store reports; needed where it reports none.
    metric: Metric | None = None
    #: Pinecone's ``X-Pinecone-Api-Version``.
    pinecone_api_version: str = Field("2025-10", pattern=r"^\d{4}-\d{2}$")
    #: Chroma's tenant and database.
    chroma_tenant: str = Field("default_tenant", pattern=r"^[A-Za-z0-9_-]{1,128}$")
    chroma_database: str = Field("default_database", pattern=r"^[A-Za-z0-9_-]{1,128}$")
    #: Weaviate: the property holding the app's id (Weaviate ids are UUIDs; the sidecar
    #: derives one from the app's id and keeps the app's id here).
    weaviate_id_property: str = Field("sidecarId", pattern=PROPERTY)
    #: the most matches one query may ask for.
    max_top_k: int = Field(100, ge=1, le=10_000)
    #: the most vectors one upsert, fetch or delete may carry.
    max_batch: int = Field(100, ge=1, le=1000)
    #: largest request body accepted from the app (413 past it).
    max_request_bytes: Size = Field(4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: largest answer read from the store (502 past it).
    max_response_bytes: Size = Field(16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    #: how long what the store said about a namespace (dimension, metric) is trusted.
    describe_ttl: Duration = Field(300.0, gt=0, le=86_400)
    #: one call to the store (connect included); the upstream's ``timeout`` bounds the whole.
    timeout: Duration = Field(10.0, gt=0)
    #: connections kept open to the store.
    max_connections: int = Field(32, ge=1, le=1000)

    @field_validator("namespaces")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        for name, store in v.items():
            if not re.match(NAMESPACE, name):
                raise ValueError(f"{name!r} is not a plain name (letters, digits, . _ -)")
            if store and not re.match(STORE_NAME, store):
                raise ValueError(f"{name}: {store!r} is not a usable store name")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> VectorsOptions:
        problems: list[str] = []
        if self.backend == "pinecone" and self.api_key is None:
            problems.append("api_key: Pinecone needs a key")
        if self.default_namespace is not None and self.default_namespace not in self.namespaces:
            problems.append(
                f"default_namespace: {self.default_namespace!r} is not one of namespaces "
                f"({', '.join(sorted(self.namespaces))})"
            )
        for name, store in self.namespaces.items():
            if self.backend == "weaviate" and not WEAVIATE_CLASS.match(store):
                problems.append(
                    f"namespaces.{name}: {store!r} is no Weaviate collection name "
                    "(a capital letter, then letters, digits and _)"
                )
            if self.backend == "chroma" and not CHROMA_COLLECTION.match(store):
                problems.append(
                    f"namespaces.{name}: {store!r} is no Chroma collection name "
                    "(3-512 of letters, digits, . _ -, starting and ending alphanumeric)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def namespace_of(self, asked: str | None) -> str | None:
        """The app namespace a call addresses (``None``: it named none and there is no default)."""
        if asked is not None:
            return asked
        if self.default_namespace is not None:
            return self.default_namespace
        if len(self.namespaces) == 1:
            return next(iter(self.namespaces))
        return None
