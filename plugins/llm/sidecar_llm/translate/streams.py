"""Streamed responses: stateful event converters, one instance per stream.

`AnthropicToOpenAIStream` turns Anthropic's `message_start` / `content_block_*` /
`message_delta` / `message_stop` events into OpenAI `chat.completion.chunk` dicts;
`OpenAIToAnthropicStream` does the reverse. Both keep the usage they saw. They take parsed
events (see `sse`) and return dicts; framing, `[DONE]` and sending are the caller's. An error
the provider reports inside the stream raises `ProviderStreamError`, so the router decides what
the app sees (failover before content, an error event after it).

Content, for the router's hold-until-first-content rule: an OpenAI chunk whose delta has a
non-empty `content`, `refusal` or `tool_calls`; an Anthropic `content_block_delta`, or a
`content_block_start` of a `tool_use` block (or of a text block that already carries text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import Untranslatable
from .responses import (
    anthropic_stop_to_openai_finish,
    anthropic_usage_to_openai,
    openai_finish_to_anthropic_stop,
    openai_usage_to_anthropic,
)

__all__ = [
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "ProviderStreamError",
    "Usage",
    "is_content_anthropic",
    "is_content_openai",
]


@dataclass(frozen=True)
class Usage:
    """Tokens one call used; `input_tokens` counts all prompt tokens, cached ones included."""

    input_tokens: int
    output_tokens: int


class ProviderStreamError(Exception):
    """The provider reported an error inside a stream it had already answered 200 to."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


def _error_from(error: object) -> ProviderStreamError:
    error = error if isinstance(error, dict) else {}
    return ProviderStreamError(str(error.get("type", "api_error")), str(error.get("message", "")))


def is_content_openai(chunk: dict[str, Any]) -> bool:
    """Whether this OpenAI chunk carries answer text or tool-call data."""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and (
            delta.get("content") or delta.get("refusal") or delta.get("tool_calls")
        ):
            return True
    return False


def is_content_anthropic(event: str, data: dict[str, Any]) -> bool:
    """Whether this Anthropic event carries answer text or tool-use data."""
    if event == "content_block_delta":
        return True
    if event == "content_block_start":
        block = data.get("content_block")
        if isinstance(block, dict):
            return block.get("type") == "tool_use" or bool(block.get("text"))
    return False


class AnthropicToOpenAIStream:
    """Anthropic stream events in, OpenAI `chat.completion.chunk` dicts out.

    The usage-only chunk (`choices: []`) at the end is emitted only with `include_usage`,
    as OpenAI does; `usage` is known either way.
    """

    def __init__(self, model: str, created: int, include_usage: bool) -> None:
        self._model = model
        self._created = created
        self._include_usage = include_usage
        self._id = "chatcmpl-"
        self._raw_usage: dict[str, Any] | None = None
        # Anthropic block index -> position in OpenAI's tool_calls list.
        self._tool_positions: dict[int, int] = {}

    @property
    def usage(self) -> Usage | None:
        """Best known usage: input from `message_start`, final after `message_delta`."""
        if self._raw_usage is None:
            return None
        converted = anthropic_usage_to_openai(self._raw_usage)
        return Usage(converted["prompt_tokens"], converted["completion_tokens"])

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self._include_usage:
            chunk["usage"] = None
        return chunk

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The OpenAI chunks for one Anthropic event (often none, e.g. for `ping`)."""
        kind = event or str(data.get("type", ""))
        if kind == "message_start":
            message = data.get("message") or {}
            self._id = f"chatcmpl-{message.get('id', '')}"
            self._raw_usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_delta":
            return self._block_delta(data)
        if kind == "message_delta":
            self._raw_usage = {**(self._raw_usage or {}), **(data.get("usage") or {})}
            delta = data.get("delta") or {}
            return [self._chunk({}, anthropic_stop_to_openai_finish(delta.get("stop_reason")))]
        if kind == "message_stop" and self._include_usage:
            usage = anthropic_usage_to_openai(self._raw_usage or {})
            chunk = self._chunk({})
            chunk["choices"] = []
            chunk["usage"] = usage
            return [chunk]
        if kind == "error":
            raise _error_from(data.get("error"))
        # ping, content_block_stop, message_stop without usage, and event types Anthropic
        # may add later (its versioning policy says to ignore unknown ones).
        return []

    def _block_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        block = data.get("content_block") or {}
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            return [self._chunk({"content": text})] if text else []
        if kind != "tool_use":
            raise Untranslatable("content_block.type", f"{kind!r} blocks have no OpenAI form")
        position = len(self._tool_positions)
        self._tool_positions[int(data.get("index", 0))] = position
        arguments = json.dumps(block["input"]) if block.get("input") else ""
        call = {
            "index": position,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": arguments},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if kind == "input_json_delta":
            partial = delta.get("partial_json", "")
            position = self._tool_positions.get(int(data.get("index", 0)))
            if position is None:
                raise Untranslatable("delta", "input_json_delta outside a tool_use block")
            if not partial:
                return []
            call = {"index": position, "function": {"arguments": partial}}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "citations_delta":
            return []  # citation metadata for text already sent; OpenAI chunks have no slot
        raise Untranslatable("delta.type", f"{kind!r} deltas have no OpenAI form")


class OpenAIToAnthropicStream:
    """OpenAI chunks in, Anthropic `(event, data)` pairs out.

    `message_start` goes out with the first chunk, with zero input tokens: OpenAI reports usage
    only in its last chunk, so the real counts travel in `message_delta`, which `finish()` sends
    when the OpenAI stream has ended (`[DONE]`), followed by `message_stop`.
    """

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._finished = False
        self._open_block: int | None = None
        self._blocks = 0
        self._open_is_text = False
        # OpenAI tool_calls index -> Anthropic block index.
        self._tool_blocks: dict[int, int] = {}
        self._stop_reason: str | None = None
        self._raw_usage: dict[str, Any] | None = None

    @property
    def usage(self) -> Usage | None:
        """The usage of OpenAI's final chunk, once it has arrived."""
        if self._raw_usage is None:
            return None
        return Usage(
            int(self._raw_usage.get("prompt_tokens") or 0),
            int(self._raw_usage.get("completion_tokens") or 0),
        )

    def _start(self, chunk_id: object) -> list[tuple[str, dict[str, Any]]]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": f"msg_{chunk_id or ''}",
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def _close_block(self) -> list[tuple[str, dict[str, Any]]]:
        if self._open_block is None:
            return []
        index, self._open_block = self._open_block, None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open(self, block: dict[str, Any], is_text: bool) -> list[tuple[str, dict[str, Any]]]:
        events = self._close_block()
        self._open_block, self._open_is_text = self._blocks, is_text
        self._blocks += 1
        data = {"type": "content_block_start", "index": self._open_block, "content_block": block}
        return [*events, ("content_block_start", data)]

    def _text(self, text: str) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = []
        if self._open_block is None or not self._open_is_text:
            events = self._open({"type": "text", "text": ""}, is_text=True)
        delta = {"type": "text_delta", "text": text}
        data = {"type": "content_block_delta", "index": self._open_block, "delta": delta}
        return [*events, ("content_block_delta", data)]

    def _tool_call(self, call: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        position = int(call.get("index", 0))
        function = call.get("function") or {}
        events: list[tuple[str, dict[str, Any]]] = []
        if position not in self._tool_blocks:
            block = {"type": "tool_use", "id": call.get("id"), "name": function.get("name")}
            events = self._open({**block, "input": {}}, is_text=False)
            self._tool_blocks[position] = self._blocks - 1
        index = self._tool_blocks[position]
        arguments = function.get("arguments")
        if arguments:
            if index != self._open_block:
                raise Untranslatable("choices[0].delta.tool_calls", "interleaved tool calls")
            delta = {"type": "input_json_delta", "partial_json": arguments}
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        return events

    def feed(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The Anthropic events for one OpenAI chunk."""
        if "error" in chunk:
            raise _error_from(chunk.get("error"))
        events = self._start(chunk.get("id"))
        if isinstance(chunk.get("usage"), dict):
            self._raw_usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            for key in ("content", "refusal"):
                if isinstance(delta.get(key), str) and delta[key]:
                    events.extend(self._text(delta[key]))
                    if key == "refusal":
                        self._stop_reason = "refusal"
            for call in delta.get("tool_calls") or []:
                events.extend(self._tool_call(call))
            finish = choice.get("finish_reason")
            if finish is not None:
                if self._stop_reason != "refusal":
                    self._stop_reason = openai_finish_to_anthropic_stop(finish)
                events.extend(self._close_block())
        return events

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        """Close the message once the OpenAI stream has ended; later calls return nothing."""
        if self._finished:
            return []
        self._finished = True
        events = [*self._start(None), *self._close_block()]
        delta = {"stop_reason": self._stop_reason or "end_turn", "stop_sequence": None}
        usage = openai_usage_to_anthropic(self._raw_usage or {})
        events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events
