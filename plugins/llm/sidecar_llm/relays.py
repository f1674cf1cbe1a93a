"""Stream relays: one provider's SSE events in, the app's SSE bytes out, usage kept on the way.

One relay per (front, provider kind) pair and streamed call: OpenAI→OpenAI and
Anthropic→Anthropic pass events on (an OpenAI stream drops the usage chunk the sidecar asked for
when the app did not); the two crossed pairs translate with ``translate.streams``. ``feed`` says
whether the event carried content (text or tool data: the router holds the answer until the
first one) and ``done`` turns true at the provider's own end (``[DONE]``, ``message_stop``): a
stream that stops before it was cut. An error the provider reports inside the stream raises
:class:`~.translate.streams.ProviderStreamError`.

Not here: when to fail over or send an error event (:mod:`.calls`), the wire error shapes
(:mod:`.dialects`).
"""

from __future__ import annotations

__all__ = ["Relay", "relay_for"]

import json
import time
from typing import Any

from .translate.sse import SSEEvent, encode_sse
from .translate.streams import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    ProviderStreamError,
    Usage,
    is_content_anthropic,
    is_content_openai,
)

DONE = b"data: [DONE]\n\n"


def _json(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise ProviderStreamError(
            "api_error", "the provider sent an event that is no JSON"
        ) from None
    if not isinstance(value, dict):
        raise ProviderStreamError("api_error", "the provider sent an event that is no object")
    return value


class Relay:
    """Base of the four relays."""

    def __init__(self) -> None:
        self.done = False
        self.usage: Usage | None = None

    def feed(self, event: SSEEvent) -> tuple[list[bytes], bool]:
        """The app's bytes for one provider event, and whether it carried content."""
        raise NotImplementedError


class OpenAIToOpenAI(Relay):
    """Chunks passed on; the usage chunk only when the app asked for it."""

    def __init__(self, include_usage: bool) -> None:
        super().__init__()
        self._include_usage = include_usage

    def feed(self, event: SSEEvent) -> tuple[list[bytes], bool]:
        if event.data.strip() == "[DONE]":
            self.done = True
            return [DONE], False
        chunk = _json(event.data)
        if "error" in chunk:
            err = chunk["error"] if isinstance(chunk["error"], dict) else {}
            raise ProviderStreamError(str(err.get("type", "api_error")), str(err.get("message")))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
        if not self._include_usage:
            if not chunk.get("choices") and usage is not None:
                return [], False  # the usage chunk the sidecar asked for, not the app
            chunk.pop("usage", None)
        return [encode_sse(json.dumps(chunk))], is_content_openai(chunk)


class AnthropicToAnthropic(Relay):
    """Events passed on as they came; usage read from ``message_start``/``message_delta``."""

    def __init__(self) -> None:
        super().__init__()
        self._input = 0

    def feed(self, event: SSEEvent) -> tuple[list[bytes], bool]:
        data = _json(event.data)
        kind = event.event or str(data.get("type", ""))
        if kind == "error":
            err = data.get("error") if isinstance(data.get("error"), dict) else {}
            assert isinstance(err, dict)
            raise ProviderStreamError(str(err.get("type", "api_error")), str(err.get("message")))
        if kind == "message_start":
            usage = (data.get("message") or {}).get("usage") or {}
            self._input = int(usage.get("input_tokens") or 0)
            self.usage = Usage(self._input, int(usage.get("output_tokens") or 0))
        elif kind == "message_delta":
            usage = data.get("usage") or {}
            self._input = int(usage.get("input_tokens") or self._input)
            self.usage = Usage(self._input, int(usage.get("output_tokens") or 0))
        elif kind == "message_stop":
            self.done = True
        return [encode_sse(event.data, kind)], is_content_anthropic(kind, data)


class AnthropicToOpenAI(Relay):
    """Anthropic events in, OpenAI chunks out (``translate.streams``), then ``[DONE]``."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__()
        self._stream = AnthropicToOpenAIStream(model, int(time.time()), include_usage)

    def feed(self, event: SSEEvent) -> tuple[list[bytes], bool]:
        data = _json(event.data)
        kind = event.event or str(data.get("type", ""))
        out = [encode_sse(json.dumps(c)) for c in self._stream.feed(kind, data)]
        self.usage = self._stream.usage
        if kind == "message_stop":
            self.done = True
            out.append(DONE)
        return out, is_content_anthropic(kind, data)


class OpenAIToAnthropic(Relay):
    """OpenAI chunks in, Anthropic events out (``translate.streams``)."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self._stream = OpenAIToAnthropicStream(model)

    def feed(self, event: SSEEvent) -> tuple[list[bytes], bool]:
        if event.data.strip() == "[DONE]":
            self.done = True
            events = self._stream.finish()
            content = False
        else:
            chunk = _json(event.data)
            if "error" in chunk:
                err = chunk["error"] if isinstance(chunk["error"], dict) else {}
                raise ProviderStreamError(
                    str(err.get("type", "api_error")), str(err.get("message"))
                )
            events = self._stream.feed(chunk)
            content = is_content_openai(chunk)
        self.usage = self._stream.usage
        return [encode_sse(json.dumps(data), name) for name, data in events], content


def relay_for(front: str, provider_kind: str, model: str, include_usage: bool) -> Relay:
    """The relay from a ``provider_kind`` stream to a ``front`` app."""
    if front == "openai":
        if provider_kind == "openai":
            return OpenAIToOpenAI(include_usage)
        return AnthropicToOpenAI(model, include_usage)
    if provider_kind == "anthropic":
        return AnthropicToAnthropic()
    return OpenAIToAnthropic(model)
