"""A fake Anthropic Messages API on 127.0.0.1: ``POST /v1/messages``, plain and streamed.

It speaks Anthropic's public wire format as the official ``anthropic`` SDK parses it: the message
JSON, the named SSE events in their real order (``message_start``, ``content_block_start``,
``ping``, ``content_block_delta`` with ``text_delta`` / ``input_json_delta``,
``content_block_stop``, ``message_delta`` with the output usage, ``message_stop``), ``event:
error`` in a started stream, ``{"type": "error", "error": {type, message}, "request_id"}`` bodies,
``request-id`` and ``retry-after`` headers. It checks what Anthropic checks: the key (``x-api-key``
or, as the 2.x SDK sends it, ``Authorization: Bearer``), ``anthropic-version``, required
``max_tokens``, unknown fields, roles, and ``tool_result`` blocks answering the previous message's
``tool_use``. It is not a model: answers are scripted, or the echo of the last user message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from fake_provider import FakeProvider, StreamFrames, make_id, sse
from fake_script import (
    Fail,
    Reply,
    StreamThenFail,
    apply_limits,
    count_words,
    echo_text,
    plain_text,
    split_json,
    words,
)

ANTHROPIC_TEST_KEY = "sk-ant-test-0000000000000000"

#: the request fields the Messages API accepts; any other is refused as Anthropic does
MESSAGE_FIELDS = frozenset(
    "model messages max_tokens system metadata stop_sequences stream temperature top_k top_p "
    "tools tool_choice thinking service_tier container mcp_servers context_management "
    "output_format output_config inference_geo cache_control diagnostics speed user_profile_id "
    "workspace_id".split()
)
#: Anthropic's error type and wording per status, for scripted failures
FAILURES: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key has no permission to use this resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timeout"),
    529: ("overloaded_error", "Overloaded"),
}  # fmt: skip


class FakeAnthropic(FakeProvider):
    """Anthropic's API for one key: ``url`` is ``http://127.0.0.1:PORT``, what the SDK wants."""

    def __init__(self, api_key: str = ANTHROPIC_TEST_KEY) -> None:
        super().__init__(api_key)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_route("*", "/{tail:.*}", self._unknown)

    def headers(self, **extra: str) -> dict[str, str]:
        return {
            "request-id": make_id("req_011C"),
            "anthropic-organization-id": "00000000-0000-4000-8000-000000000000",
            "anthropic-ratelimit-requests-limit": "4000",
            "anthropic-ratelimit-requests-remaining": "3999",
            **extra,
        }

    def error(
        self, status: int, type_: str, message: str, *, retry_after: int | str | None = None
    ) -> web.Response:
        """Anthropic's error answer: ``{"type": "error", "error": {...}, "request_id"}``."""
        headers = self.headers()
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        body = {
            "type": "error",
            "error": {"type": type_, "message": message},
            "request_id": headers["request-id"],
        }
        return web.json_response(body, status=status, headers=headers)

    def fail(self, step: Fail) -> web.Response:
        type_, message = FAILURES.get(step.status, ("api_error", "Internal server error"))
        return self.error(
            step.status, step.type_ or type_, step.message or message, retry_after=step.retry_after
        )

    def stream_error(self, status: int) -> bytes:
        type_, message = FAILURES.get(status, ("api_error", "Internal server error"))
        data = {"type": "error", "error": {"type": type_, "message": message}}
        return sse(json.dumps(data), "error")

    def _refusal(self, request: web.Request, body: Any) -> web.Response | None:
        """What Anthropic answers before any model work: key, version header, JSON body."""
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if key is None and auth.startswith("Bearer "):
            key = auth[7:].strip()
        if not key:
            return self.error(401, "authentication_error", "x-api-key header is required")
        if key != self.api_key:  # never echoed back, not even masked
            return self.error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self.error(400, "invalid_request_error", "anthropic-version: header is required")
        if not isinstance(body, dict):
            return self.error(400, "invalid_request_error", "Request body is not valid JSON.")
        return None

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return self.error(404, "not_found_error", "Not Found")

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        if (refused := self._refusal(request, body)) is not None:
            return refused
        if (problem := check_messages(body)) is not None:
            return self.error(400, "invalid_request_error", problem)
        step = self.next_step()
        streamed = body.get("stream") is True
        if (early := await self.before_answer(request, step, streamed)) is not None:
            return early
        answer = MessageAnswer(body, step if isinstance(step, Reply) else Reply())
        if not streamed:
            if isinstance(step, StreamThenFail):
                payload = json.dumps(answer.message()).encode()
                headers = self.headers(**{"content-type": "application/json"})
                return await self.cut_short(request, headers, payload)
            return web.json_response(answer.message(), headers=self.headers())
        headers = self.headers(
            **{"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        )
        return await self.stream(request, step, headers, answer.frames())


def check_messages(body: dict[str, Any]) -> str | None:
    """Anthropic's own 400 message for a Messages request; None when valid."""
    for name in body:
        if name not in MESSAGE_FIELDS:
            return f"{name}: Extra inputs are not permitted"
    for name in ("model", "messages", "max_tokens"):
        if name not in body:
            return f"{name}: Field required"
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        return "max_tokens: Input should be a valid integer"
    if max_tokens < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 1:
        return "temperature: Input should be less than or equal to 1"
    system = body.get("system")
    if isinstance(system, list):
        for j, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                return f"system.{j}.type: Input should be 'text'"
    for i, tool in enumerate(body.get("tools") or []):
        if isinstance(tool, dict) and tool.get("type", "custom") == "custom":
            for name in ("name", "input_schema"):
                if name not in tool:
                    return f"tools.{i}.custom.{name}: Field required"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    return _check_turns(messages)


def _blocks(message: Mapping[str, Any]) -> list[Any]:
    content = message.get("content")
    return content if isinstance(content, list) else []


def _check_turns(messages: list[Any]) -> str | None:
    previous_tool_uses: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        results = {
            j: b.get("tool_use_id")
            for j, b in enumerate(_blocks(message))
            if isinstance(b, dict) and b.get("type") == "tool_result"
        }
        for j, tool_use_id in results.items():
            if tool_use_id not in previous_tool_uses:
                return (
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {tool_use_id}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
        missing = previous_tool_uses - set(results.values())
        if missing:
            return (
                f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(sorted(missing))}. Each `tool_use` block must "
                "have a corresponding `tool_result` block in the next message."
            )
        uses = [
            (j, b)
            for j, b in enumerate(_blocks(message))
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
        for j, use in uses:
            if not isinstance(use.get("input"), dict):
                return (
                    f"messages.{i}.content.{j}.tool_use.input: Input should be a valid dictionary"
                )
        previous_tool_uses = {str(use.get("id")) for _, use in uses}
    return None


class MessageAnswer:
    """The answer a :class:`Reply` means for one request, as a message or as stream events."""

    def __init__(self, body: dict[str, Any], reply: Reply) -> None:
        self.id = make_id("msg_01")
        self.model = str(body["model"])
        last = next(
            (
                plain_text(m.get("content"))
                for m in reversed(body["messages"])
                if m["role"] == "user"
            ),
            "",
        )
        text = reply.text if reply.text is not None or reply.tool_calls else echo_text(last)
        why, self.stop_sequence = None, None
        if text is not None:
            stops = body.get("stop_sequences") or []
            text, why, self.stop_sequence = apply_limits(text, body["max_tokens"], stops)
        self.text = text
        self.calls = [(c.id or make_id("toolu_01"), c.name, c.arguments) for c in reply.tool_calls]
        self.stop_reason = reply.stop or ("tool_use" if self.calls else why or "end_turn")
        self.input_tokens = reply.input_tokens
        if self.input_tokens is None:
            self.input_tokens = count_words(body["messages"]) + count_words(
                body.get("system"), key="system"
            )
        self.output_tokens = reply.output_tokens
        if self.output_tokens is None:
            args = [json.dumps(arguments) for _, _, arguments in self.calls]
            self.output_tokens = len(words(text or "")) + sum(len(words(a)) for a in args)

    def _usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def _envelope(self, content: list[Any], stop_reason: str | None, usage: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": self.stop_sequence if stop_reason else None,
            "usage": self._usage(usage),
        }

    def message(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if self.text or (self.text is not None and not self.calls):
            content.append({"type": "text", "text": self.text})
        for id_, name, arguments in self.calls:
            content.append({"type": "tool_use", "id": id_, "name": name, "input": arguments})
        assert self.output_tokens is not None
        return self._envelope(content, self.stop_reason, self.output_tokens)

    def frames(self) -> StreamFrames:
        def event(name: str, **data: Any) -> bytes:
            return sse(json.dumps({"type": name, **data}), name)

        start = event("message_start", message=self._envelope([], None, 1))
        preamble, content = [start], []
        index = 0
        if self.text:
            text_block = {"type": "text", "text": ""}
            preamble += [event("content_block_start", index=0, content_block=text_block)]
            preamble += [event("ping")]
            for piece in words(self.text):
                delta = {"type": "text_delta", "text": piece}
                content.append(event("content_block_delta", index=0, delta=delta))
            index = 1
        else:
            preamble.append(event("ping"))
        for id_, name, arguments in self.calls:
            before = event("content_block_stop", index=index - 1) if index else b""
            block = {"type": "tool_use", "id": id_, "name": name, "input": {}}
            content.append(before + event("content_block_start", index=index, content_block=block))
            for fragment in ["", *split_json(json.dumps(arguments))]:
                delta = {"type": "input_json_delta", "partial_json": fragment}
                content.append(event("content_block_delta", index=index, delta=delta))
            index += 1
        trailer = [event("content_block_stop", index=index - 1)] if index else []
        ending: dict[str, Any] = {"stop_reason": self.stop_reason}
        ending["stop_sequence"] = self.stop_sequence
        trailer.append(
            event("message_delta", delta=ending, usage={"output_tokens": self.output_tokens})
        )
        trailer.append(event("message_stop"))
        return StreamFrames(preamble, content, trailer)
