"""Configs and clients for the integration tests: a sidecar with one ``graphql`` upstream
named ``gql`` in front of the test server, and a gql client calling it through the sidecar."""

from __future__ import annotations

from typing import Any

from gql import Client
from gql.transport.aiohttp import AIOHTTPTransport

UPSTREAM = "gql"


def sidecar_config(server_url: str, **options: Any) -> dict[str, Any]:
    """A whole sidecar config; ``upstream=`` adds upstream keys (retry, circuit_breaker...),
    ``top=`` top-level sections."""
    upstream = options.pop("upstream", {})
    top = options.pop("top", {})
    return {
        "upstreams": {
            UPSTREAM: {
                "adapter": "graphql",
                "url": server_url,
                "timeout": "10s",
                "retry": {"backoff": {"base": "1ms", "max": "2ms"}},
                **upstream,
                "options": options,
            }
        },
        **top,
    }


def endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}/{UPSTREAM}/graphql"


def client(port: int) -> Client:
    """gql over aiohttp to the sidecar, as an app would point it at the server."""
    return Client(transport=AIOHTTPTransport(url=endpoint(port), timeout=10))
