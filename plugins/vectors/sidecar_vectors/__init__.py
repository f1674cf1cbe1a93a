"""sidecar-vectors: one vector-store API beside the app (``adapter: vectors``).

The app calls ``POST /<upstream>/upsert``, ``/query``, ``/fetch``, ``/delete`` and
``GET /<upstream>/describe`` with one JSON shape and one filter language; the upstream's options
say which store answers (Pinecone, Weaviate or Chroma), where it is, its key by secret
reference and how the app's namespaces map to the store's, so switching stores is a config
change. Scores come back normalised, with their metric. Imports only ``sidecar``, the public
plugin API. Docs: ``docs/vectors.md``.
"""

from __future__ import annotations

from sidecar import AdapterRegistry, hookimpl

from .adapter import VectorsAdapter

#: The plugin API major version this plugin is written for.
SIDECAR_API = 1


@hookimpl
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add("vectors", VectorsAdapter)
