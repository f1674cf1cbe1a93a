"""A fake OpenAI API on 127.0.0.1: chat completions (plain and SSE), embeddings, the model list.

It speaks OpenAI's public wire format as the official ``openai`` SDK parses it: JSON bodies,
``data:`` chunks ending with ``[DONE]``, the ``usage`` chunk (``choices: []``) only when the request
asked for ``stream_options.include_usage``, ``{"error": {message, type, param, code}}`` bodies,
``x-request-id``, ``retry-after``. It checks what OpenAI checks before answering: the bearer key,
unknown or missing fields, roles, tool messages answering a preceding ``tool_calls``. It is not a
model: answers are scripted, or the echo of the last user message (``fake_script``); the chat
checks and answer shapes are in ``fake_openai_chat``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from fake_openai_chat import chat_answer, check_chat
from fake_provider import FakeProvider, make_id, sse
from fake_script import Fail, Reply, StreamThenFail, words

OPENAI_TEST_KEY = "sk-test-openai-0000000000000000"
DEFAULT_OPENAI_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "text-embedding-3-small")
EMBEDDING_DIMENSIONS = 8  # default vector length: small, the values are meaningless anyway

#: OpenAI's wording and error type per status, for scripted failures
FAILURES: Mapping[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "permission_error", None),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error",
          "model_not_found"),
    408: ("Request timed out.", "timeout", None),
    429: ("Rate limit reached for requests. Please try again later.", "requests",
          "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!",
          "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
}  # fmt: skip


class FakeOpenAI(FakeProvider):
    """OpenAI's API for one key: ``url`` is ``http://127.0.0.1:PORT/v1``, what the SDK wants."""

    def __init__(
        self, api_key: str = OPENAI_TEST_KEY, *, models: Iterable[str] = DEFAULT_OPENAI_MODELS
    ) -> None:
        super().__init__(api_key)
        self.models = tuple(models)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._unknown)

    # -- answers --------------------------------------------------------------------------------

    def headers(self, **extra: str) -> dict[str, str]:
        return {
            "x-request-id": make_id("req_"),
            "openai-version": "2020-10-01",
            "openai-organization": "fake-org",
            "openai-processing-ms": "1",
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-reset-requests": "6ms",
            **extra,
        }

    def error(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after: int | str | None = None,
    ) -> web.Response:
        """OpenAI's error answer: ``{"error": {"message", "type", "param", "code"}}``."""
        headers = self.headers()
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        return web.json_response(body, status=status, headers=headers)

    def fail(self, step: Fail) -> web.Response:
        message, type_, code = FAILURES.get(step.status, ("Server error.", "server_error", None))
        return self.error(
            step.status,
            step.message or message,
            type_=step.type_ or type_,
            code=code,
            retry_after=step.retry_after,
        )

    def stream_error(self, status: int) -> bytes:
        """OpenAI's error in a started stream: a ``data:`` line holding ``{"error": ...}``."""
        message, type_, code = FAILURES.get(status, ("Server error.", "server_error", None))
        error = {"message": message, "type": type_, "param": None, "code": code}
        return sse(json.dumps({"error": error}))

    def _refusal(self, request: web.Request, body: Any) -> web.Response | None:
        """What OpenAI answers before any model work: no or a wrong key, a body that is no JSON."""
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self.error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if auth[7:].strip() != self.api_key:  # never echoed back, not even masked
            return self.error(401, "Incorrect API key provided.", code="invalid_api_key")
        if not isinstance(body, dict):
            return self.error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            )
        return None

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return self.error(404, f"Invalid URL ({request.method} {request.path})")

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        if (refused := self._refusal(request, {})) is not None:
            return refused
        data = [
            {"id": m, "object": "model", "created": 1715367049, "owned_by": "system"}
            for m in self.models
        ]
        return web.json_response({"object": "list", "data": data}, headers=self.headers())

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        if (refused := self._refusal(request, body)) is not None:
            return refused
        if (problem := check_chat(body)) is not None:
            message, param, code = problem
            return self.error(400, message, param=param, code=code)
        step = self.next_step()
        streamed = body.get("stream") is True
        if (early := await self.before_answer(request, step, streamed)) is not None:
            return early
        answer = chat_answer(body, step if isinstance(step, Reply) else Reply())
        created = int(time.time())
        if not streamed:
            completion = answer.completion(body["model"], created)
            if isinstance(step, StreamThenFail):
                payload = json.dumps(completion).encode()
                headers = self.headers(**{"content-type": "application/json"})
                return await self.cut_short(request, headers, payload)
            return web.json_response(completion, headers=self.headers())
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        frames = answer.frames(body["model"], created, include_usage)
        headers = self.headers(
            **{"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        )
        return await self.stream(request, step, headers, frames)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        if (refused := self._refusal(request, body)) is not None:
            return refused
        if not body.get("model"):
            return self.error(400, "you must provide a model parameter")
        inputs = body.get("input")
        if inputs is None or inputs == "" or inputs == []:
            return self.error(400, "'input' is a required property", param="input")
        step = self.next_step()
        if (early := await self.before_answer(request, step, False)) is not None:
            return early
        items = [inputs] if isinstance(inputs, str) or _is_tokens(inputs) else list(inputs)
        size = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i, "embedding": embedding(item, size, as_base64)}
            for i, item in enumerate(items)
        ]
        tokens = sum(len(x) if _is_tokens(x) else len(words(str(x))) for x in items)
        result = {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        if isinstance(step, StreamThenFail):
            payload = json.dumps(result).encode()
            headers = self.headers(**{"content-type": "application/json"})
            return await self.cut_short(request, headers, payload)
        return web.json_response(result, headers=self.headers())


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, int) for t in value)


def embedding(item: Any, size: int, as_base64: bool) -> list[float] | str:
    """A deterministic vector for ``item`` (float32 values in [-1, 1), from its SHA-256)."""
    seed = hashlib.sha256(json.dumps(item).encode()).digest()
    values = [(seed[i % len(seed)] - 128) / 128 for i in range(size)]
    if as_base64:  # what the SDK asks for by default: little-endian float32, base64
        return base64.b64encode(struct.pack(f"<{size}f", *values)).decode()
    return values
