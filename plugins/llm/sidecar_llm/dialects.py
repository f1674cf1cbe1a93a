"""The two fronts an app calls, as the attempt loop needs them: OpenAI-compatible and Anthropic.

A :class:`Dialect` turns the app's request into a provider's (as it is when the kinds match,
translated when they differ), the provider's answer back into the app's shape, and builds the
app's errors: OpenAI's ``{"error": {...}}`` or Anthropic's ``{"type": "error", ...}`` with the
right status and ``Retry-After``. Usage is read from the provider's answer before translation.

Not here: which provider is tried (:mod:`.router`), streams (:mod:`.relays`).
"""

from __future__ import annotations

__all__ = ["ANTHROPIC", "OPENAI", "Dialect"]

import json
import math
import time
from typing import Any

from sidecar import Headers, Response

from .translate.errors import anthropic_error, openai_error
from .translate.requests import anthropic_to_openai_chat, openai_chat_to_anthropic
from .translate.responses import anthropic_message_to_openai_chat, openai_chat_to_anthropic_message
from .translate.sse import encode_sse
from .translate.streams import Usage

JSON = "application/json"


def json_response(status: int, body: dict[str, Any], headers: Headers | None = None) -> Response:
    h = headers if headers is not None else Headers()
    h.set("content-type", JSON)
    return Response(status, h, json.dumps(body).encode())


def _tokens(value: object) -> int:
    """A provider's token count; what is no finite non-negative number counts as none."""
    if isinstance(value, int | float) and 0 < value < math.inf:
        return int(value)
    return 0


def usage_of(kind: str, answer: dict[str, Any]) -> Usage | None:
    """The usage in a provider's non-streamed answer."""
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return None
    if kind == "openai":
        return Usage(_tokens(usage.get("prompt_tokens")), _tokens(usage.get("completion_tokens")))
    return Usage(_tokens(usage.get("input_tokens")), _tokens(usage.get("output_tokens")))


class Dialect:
    """One front's wire shape."""

    name = ""

    def error_body(
        self, status: int, message: str, type_: str | None, param: str | None
    ) -> dict[str, Any]:
        raise NotImplementedError

    def error(
        self,
        status: int,
        message: str,
        *,
        type_: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> Response:
        headers = Headers()
        if retry_after is not None:
            headers.set("retry-after", str(max(1, math.ceil(retry_after))))
        return json_response(status, self.error_body(status, message, type_, param), headers)

    def stream_error(self, message: str) -> bytes:
        """The event that ends a stream cut after content reached the app."""
        raise NotImplementedError

    def provider_request(
        self, kind: str, body: dict[str, Any], model: str, stream: bool, default_max_tokens: int
    ) -> dict[str, Any]:
        """The request for a provider of ``kind`` serving ``model`` (raises Untranslatable)."""
        raise NotImplementedError

    def app_answer(self, kind: str, answer: dict[str, Any], model: str) -> dict[str, Any]:
        raise NotImplementedError

    def unknown_model(self, model: object) -> Response:
        raise NotImplementedError


class OpenAIDialect(Dialect):
    name = "openai"

    def error_body(
        self, status: int, message: str, type_: str | None, param: str | None
    ) -> dict[str, Any]:
        return openai_error(status, message, type_=type_, param=param)

    def stream_error(self, message: str) -> bytes:
        return encode_sse(json.dumps(openai_error(502, message, type_="server_error")))

    def provider_request(
        self, kind: str, body: dict[str, Any], model: str, stream: bool, default_max_tokens: int
    ) -> dict[str, Any]:
        if kind == "openai":
            out = dict(body)
            if stream:
                # usage is always counted: ask for it (the relay drops it if the app did not)
                out["stream_options"] = {
                    **(body.get("stream_options") or {}),
                    "include_usage": True,
                }
        else:
            out = openai_chat_to_anthropic(body, default_max_tokens=default_max_tokens)
        out["model"] = model
        return out

    def app_answer(self, kind: str, answer: dict[str, Any], model: str) -> dict[str, Any]:
        if kind == "openai":
            return answer
        return anthropic_message_to_openai_chat(answer, model=model, created=int(time.time()))

    def unknown_model(self, model: object) -> Response:
        return self.error(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            type_="invalid_request_error",
            param="model",
        )


class AnthropicDialect(Dialect):
    name = "anthropic"

    def error_body(
        self, status: int, message: str, type_: str | None, param: str | None
    ) -> dict[str, Any]:
        if param is not None and not message.startswith(param):
            message = f"{param}: {message}"
        return anthropic_error(status, message, type_=type_)

    def stream_error(self, message: str) -> bytes:
        return encode_sse(json.dumps(anthropic_error(502, message, type_="api_error")), "error")

    def provider_request(
        self, kind: str, body: dict[str, Any], model: str, stream: bool, default_max_tokens: int
    ) -> dict[str, Any]:
        if kind == "anthropic":
            out = dict(body)
        else:
            out = anthropic_to_openai_chat(body)
            if stream:
                out["stream_options"] = {**(out.get("stream_options") or {}), "include_usage": True}
        out["model"] = model
        return out

    def app_answer(self, kind: str, answer: dict[str, Any], model: str) -> dict[str, Any]:
        if kind == "anthropic":
            return answer
        return openai_chat_to_anthropic_message(answer, model=model)

    def unknown_model(self, model: object) -> Response:
        return self.error(404, f"model: {model}", type_="not_found_error")


OPENAI = OpenAIDialect()
ANTHROPIC = AnthropicDialect()
