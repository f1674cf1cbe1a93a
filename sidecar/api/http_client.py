"""The sidecar's own HTTP/1.1 upstream client, lent to a plugin's adapter.

A plugin whose adapter speaks HTTP/1.1 to its server (GraphQL, a JSON API) need not bring a
client of its own: :meth:`RouteContext.http_client <sidecar.api.RouteContext.http_client>` gives
a :data:`~sidecar.api.Handler` that sends an :class:`~sidecar.api.Exchange` to the route's
upstream exactly as the built-in ``http`` adapter does: its bounded keep-alive pool
(``pool.*``), its ``tls`` section (a private CA, a client certificate, ``server_name``),
``connect_timeout`` and ``response_header_timeout``, the ``Host`` rewrite, ``X-Forwarded-For``,
and the upstream URL's base path before ``exchange.path``. It returns the
:class:`~sidecar.api.Response` once its head arrived; the body is ``bytes`` when it came
whole with the head, else an async iterator to read (or ``aclose``) to its end. Errors are the
sidecar's typed upstream errors (``UpstreamConnectError``, ``UpstreamReset``,
``UpstreamTimeout``, ``UpstreamProtocolError``), which retry and the circuit breaker know.

Published by the built-in ``http`` adapter plugin (``sidecar.adapters.http``) for the running
sidecar, under :data:`HTTP_CLIENT` in ``resources``; absent when that plugin is disabled, and
in unit tests (a :class:`RouteContext` without a sidecar), where ``http_client()`` is ``None``.
Not here: HTTP/2, WebSocket upgrades, a client toward an address other than the upstream's.
"""

from __future__ import annotations

__all__ = ["HTTP_CLIENT", "UpstreamClients"]

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..chain import Handler
    from ..config.models import UpstreamConfig

#: where the running sidecar publishes its HTTP/1.1 client in ``resources``
HTTP_CLIENT = "http_client"


class UpstreamClients(Protocol):
    """What is published under :data:`HTTP_CLIENT`: the client's handlers, per upstream."""

    def lend(self, name: str, upstream: UpstreamConfig) -> Handler:
        """The handler sending to upstream ``name`` with ``upstream``'s settings; its pool is
        kept while a live route table borrowed it (asked again at each composition)."""
        ...
