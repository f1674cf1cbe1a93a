"""A fake OpenAI API on 127.0.0.1: chat completions (plain and SSE), embeddings, the model list.

It speaks OpenAI's public wire format as the official ``openai`` SDK parses it: JSON bodies,
``data:`` chunks ending with ``[DONE]``, the ``usage`` chunk (``choices: []``) only when the request
asked for ``stream_options.include_usage``, ``{"error": {message, type, param, code}}`` bodies,
``x-request-id``, ``retry-after``. It checks what OpenAI checks before answering: the bearer key,
unknown or missing fields, roles, tool messages answering a preceding ``tool_calls``. It is not a
model: answers are scripted, or the echo of the last user message (``fake_provider``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web
from fake_provider import (
    Fail,
    FakeProvider,
    Reply,
    StreamFrames,
    StreamThenFail,
    apply_limits,
    count_words,
    echo_text,
    make_id,
    plain_text,
    split_json,
    sse,
    words,
)

OPENAI_TEST_KEY = "sk-test-openai-0000000000000000"
DEFAULT_OPENAI_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "text-embedding-3-small")
EMBEDDING_DIMENSIONS = 8  # default vector length: small, the values are meaningless anyway

#: the request fields OpenAI's chat completions accept; any other is refused as OpenAI does
CHAT_FIELDS = frozenset(
    "messages model audio frequency_penalty function_call functions logit_bias logprobs "
    "max_completion_tokens max_tokens metadata modalities n parallel_tool_calls prediction "
    "presence_penalty prompt_cache_key prompt_cache_retention reasoning_effort response_format "
    "safety_identifier seed service_tier stop store stream stream_options temperature "
    "tool_choice tools top_logprobs top_p user verbosity web_search_options".split()
)
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
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


def check_chat(body: dict[str, Any]) -> tuple[str, str | None, str | None] | None:
    """OpenAI's own 400s for a chat request, as ``(message, param, code)``; None when valid."""
    for name in body:
        if name not in CHAT_FIELDS:
            return f"Unrecognized request argument supplied: {name}", None, None
    if not body.get("model"):
        return "you must provide a model parameter", None, None
    messages = body.get("messages")
    if messages is None:
        return "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
    if not isinstance(messages, list) or not messages:
        return (
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            "messages",
            "empty_array",
        )
    if "stream_options" in body and body.get("stream") is not True:
        return (
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            None,
        )
    return _check_roles(messages)


def _check_roles(messages: list[Any]) -> tuple[str, str | None, str | None] | None:
    awaiting: set[str] = set()  # tool_call ids of the last assistant message not yet answered
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            allowed = "'system', 'assistant', 'user', 'function', 'tool', and 'developer'"
            return (
                f"Invalid value: '{role}'. Supported values are: {allowed}.",
                f"messages[{i}].role",
                "invalid_value",
            )
        if role == "tool":
            if message.get("tool_call_id") not in awaiting:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                    None,
                )
            awaiting.discard(message["tool_call_id"])
            continue
        if awaiting:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(sorted(awaiting))}",
                f"messages.[{i}].role",
                None,
            )
        if role == "assistant":
            awaiting = {c.get("id") for c in message.get("tool_calls") or []}
    return None


class ChatAnswer:
    """One answer, rendered as a completion or as stream frames."""

    def __init__(
        self,
        text: str | None,
        tool_calls: Sequence[tuple[str, str, str]],
        finish_reason: str,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        self.id = make_id("chatcmpl-")
        self.text = text
        self.tool_calls = tool_calls  # (id, name, arguments JSON)
        self.finish_reason = finish_reason
        self.usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _calls(self) -> list[dict[str, Any]]:
        return [
            {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}
            for id_, name, args in self.tool_calls
        ]

    def completion(self, model: str, created: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.text,
            "refusal": None,
            "annotations": [],
        }
        if self.tool_calls:
            message["tool_calls"] = self._calls()
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def frames(self, model: str, created: int, include_usage: bool) -> StreamFrames:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data: dict[str, Any] = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:  # OpenAI sends "usage": null on every chunk but the last
                data["usage"] = None
            return sse(json.dumps(data))

        first = {"role": "assistant", "content": "" if self.text else None, "refusal": None}
        content = [chunk({"content": piece}) for piece in words(self.text or "")]
        for index, (id_, name, args) in enumerate(self.tool_calls):
            start = {"index": index, "id": id_, "type": "function"}
            start["function"] = {"name": name, "arguments": ""}
            content.append(chunk({"tool_calls": [start]}))
            for fragment in split_json(args):
                part = {"index": index, "function": {"arguments": fragment}}
                content.append(chunk({"tool_calls": [part]}))
        trailer = [chunk({}, self.finish_reason)]
        if include_usage:
            last = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": self.usage,
            }
            trailer.append(sse(json.dumps(last)))
        trailer.append(sse("[DONE]"))
        return StreamFrames([chunk(first)], content, trailer)


def chat_answer(body: dict[str, Any], reply: Reply) -> ChatAnswer:
    """The answer ``reply`` means for this request: text cut to its limits, ids, usage."""
    messages = body["messages"]
    last = next(
        (plain_text(m.get("content")) for m in reversed(messages) if m["role"] in ("user", "tool")),
        "",
    )
    text = reply.text if reply.text is not None or reply.tool_calls else echo_text(last)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    why = None
    if text is not None:
        text, why, _ = apply_limits(text, limit, stops)
    calls = [(c.id or make_id("call_"), c.name, json.dumps(c.arguments)) for c in reply.tool_calls]
    finish = reply.stop or ("tool_calls" if calls else "length" if why == "max_tokens" else "stop")
    out = reply.output_tokens
    if out is None:
        out = len(words(text or "")) + sum(len(words(args)) for _, _, args in calls)
    prompt = reply.input_tokens
    if prompt is None:
        prompt = count_words(messages)
    return ChatAnswer(text, calls, finish, prompt, out)
