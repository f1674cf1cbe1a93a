"""What a fake provider is told to answer, and the text rules its answers follow.

The scripted steps a test queues (:class:`Reply`, :class:`Fail`, :class:`Hang`,
:class:`StreamThenFail`, :class:`StreamThenError`, :class:`Close`), the record of one request
(:class:`ProviderRequest`), and the provider-neutral text rules: the deterministic echo answer,
usage counted in words, where ``max_tokens`` and stop sequences cut an answer, tool arguments in
stream fragments. No I/O and no wire format here (``fake_provider``, ``fake_openai``,
``fake_anthropic``).
"""

from __future__ import annotations

__all__ = [
    "Close",
    "Fail",
    "Hang",
    "ProviderRequest",
    "Reply",
    "Step",
    "StreamThenError",
    "StreamThenFail",
    "ToolCall",
    "apply_limits",
    "count_words",
    "echo_text",
    "plain_text",
    "split_json",
    "words",
]

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class ToolCall:
    """One tool call the model makes; ``id`` is generated in the provider's format when None."""

    name: str
    arguments: Mapping[str, Any]
    id: str | None = None


@dataclasses.dataclass(frozen=True)
class Reply:
    """A successful answer (the default step: ``Reply()``).

    ``text`` None means the deterministic echo of the last user-side message (see
    :func:`echo_text`), unless ``tool_calls`` are given, then there is no text. ``stop`` is the
    provider's own finish/stop reason (``"length"`` for OpenAI, ``"max_tokens"`` for Anthropic,
    ...); None derives it: tool calls, the request's token limit, a stop sequence, else a normal
    end. Usage is the word counts unless ``input_tokens``/``output_tokens`` are given.
    """

    text: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    stop: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclasses.dataclass(frozen=True)
class Fail:
    """An error answer with the provider's own error body (429, 500, 503, 529, ...).

    ``retry_after`` becomes the ``retry-after`` header (seconds, or a string sent verbatim, e.g.
    an HTTP date); ``message``/``type_`` override the provider's usual wording for the status.
    """

    status: int
    retry_after: int | str | None = None
    message: str | None = None
    type_: str | None = None


@dataclasses.dataclass(frozen=True)
class Hang:
    """Never answer (until the test resets or stops the server): for timeouts.

    With ``after_chunks`` and a streamed request, the response starts and that many content events
    are sent first, then the stream stalls.
    """

    after_chunks: int | None = None


@dataclasses.dataclass(frozen=True)
class StreamThenFail:
    """Send ``after_chunks`` content events (after the stream's preamble), then drop the connection.

    A non-streamed request gets its status line and headers, then the connection drops.
    """

    after_chunks: int


@dataclasses.dataclass(frozen=True)
class StreamThenError:
    """Send ``after_chunks`` content events, then the provider's in-stream error event, then end.

    That is how the providers report an error once a stream has started (Anthropic: ``event:
    error`` with e.g. ``overloaded_error``; OpenAI: a ``data: {"error": ...}`` line). A
    non-streamed request gets :class:`Fail` with the same status instead.
    """

    after_chunks: int
    status: int = 529


@dataclasses.dataclass(frozen=True)
class Close:
    """Close the connection at once, with no response at all."""


Step = Reply | Fail | Hang | StreamThenFail | StreamThenError | Close


@dataclasses.dataclass(frozen=True)
class ProviderRequest:
    """One request as the provider received it. ``headers`` keys are lower case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any  # the parsed JSON body; None when there was none or it was not JSON


_WORD = re.compile(r"\s*\S+")
#: message/content keys whose string values are the text a model reads (roles, ids, URLs are not)
_TEXT_KEYS = frozenset({"content", "text", "system"})


def words(text: str) -> list[str]:
    """``text`` as word pieces that join back to it (leading spaces kept): one token each."""
    return _WORD.findall(text)


def count_words(value: Any, *, key: str | None = None) -> int:
    """Words in the text parts of a request value: strings under content/text/system keys.

    The same conversation counts the same on either provider (OpenAI's system message and
    Anthropic's ``system`` field, tool results in either shape), so usage survives translation.
    """
    if isinstance(value, str):
        return len(words(value)) if key in _TEXT_KEYS else 0
    if isinstance(value, Mapping):
        return sum(count_words(v, key=k) for k, v in value.items())
    if isinstance(value, list):
        return sum(count_words(v, key=key) for v in value)
    return 0


def plain_text(content: Any) -> str:
    """The text of one message's content: a string, or its text parts / tool results joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [plain_text(part) for part in content]
        return " ".join(p for p in parts if p)
    if isinstance(content, Mapping):
        if isinstance(content.get("text"), str):
            return str(content["text"])
        if "content" in content:  # Anthropic tool_result block
            return plain_text(content["content"])
    return ""


def echo_text(last_user_text: str) -> str:
    """The default answer: ``echo: <the last user-side message's text>``."""
    return f"echo: {last_user_text}".strip()


def apply_limits(
    text: str, max_tokens: int | None, stop_sequences: Sequence[str]
) -> tuple[str, str | None, str | None]:
    """Cut ``text`` as a model would: at the first stop sequence, or after ``max_tokens`` words.

    Returns ``(text, why, sequence)`` where ``why`` is ``"stop_sequence"``, ``"max_tokens"`` or
    None (ran to its end).
    """
    cut = [(text.find(s), s) for s in stop_sequences if s and s in text]
    if cut:
        at, sequence = min(cut)
        text, why, hit = text[:at], "stop_sequence", sequence
    else:
        why, hit = None, None
    pieces = words(text)
    if max_tokens is not None and len(pieces) > max_tokens:
        return "".join(pieces[:max_tokens]), "max_tokens", None
    return text, why, hit


def split_json(text: str, size: int = 8) -> list[str]:
    """Tool-call arguments in fragments, as providers stream them (never valid JSON alone)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
