"""sidecar-pubsub: publish to message brokers over HTTP, as CloudEvents (``adapter: pubsub``).

Imports only ``sidecar``, the public plugin API. Docs: ``plugins/pubsub/README.md``.
"""

from __future__ import annotations

#: The plugin API major version this plugin is written for.
SIDECAR_API = 1
