"""Official SDK clients answered from memory, so unit tests check what the SDKs accept.

Every request the client makes is answered with one fixed status, body and content type by an
in-memory transport: no sockets, no servers. Newer anthropic SDKs require clients of the
`httpx2` fork, older ones and the openai SDK of `httpx`.
"""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any

import anthropic
import httpx
import openai


def _anthropic_http() -> ModuleType:
    try:
        return importlib.import_module("httpx2")
    except ImportError:  # anthropic SDKs before the httpx2 fork
        return httpx


def _client(
    http: ModuleType, status: int, body: bytes, content_type: str, sent: list[Any] | None
) -> Any:
    def answer(request: Any) -> Any:
        if sent is not None:
            sent.append(json.loads(request.content))
        return http.Response(status, headers={"content-type": content_type}, content=body)

    return http.Client(transport=http.MockTransport(answer))


def _encode(body: bytes | dict[str, Any]) -> tuple[bytes, str]:
    if isinstance(body, bytes):
        return body, "text/event-stream"
    return json.dumps(body).encode(), "application/json"


def openai_answering(
    body: bytes | dict[str, Any], status: int = 200, sent: list[Any] | None = None
) -> openai.OpenAI:
    """An openai client that gets `body` (JSON, or SSE bytes) for every call; the JSON
    request bodies it sends are appended to `sent`."""
    data, content_type = _encode(body)
    http_client = _client(httpx, status, data, content_type, sent)
    return openai.OpenAI(api_key="unused", http_client=http_client, max_retries=0)


def anthropic_answering(
    body: bytes | dict[str, Any], status: int = 200, sent: list[Any] | None = None
) -> anthropic.Anthropic:
    """An anthropic client that gets `body` (JSON, or SSE bytes) for every call; the JSON
    request bodies it sends are appended to `sent`."""
    data, content_type = _encode(body)
    http_client = _client(_anthropic_http(), status, data, content_type, sent)
    return anthropic.Anthropic(api_key="unused", http_client=http_client, max_retries=0)
