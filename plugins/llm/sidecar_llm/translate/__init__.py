"""Translation between OpenAI Chat Completions and Anthropic Messages: pure dict-in, dict-out.

Requests, whole responses, stream events, error bodies and SSE framing. Nothing here does I/O
or picks a provider; the router calls these functions at the edges of each attempt.
"""

from __future__ import annotations

from .errors import (
    Untranslatable,
    anthropic_error,
    anthropic_error_type,
    openai_error,
    openai_error_type,
)
from .requests import anthropic_to_openai_chat, openai_chat_to_anthropic
from .responses import (
    anthropic_message_to_openai_chat,
    anthropic_stop_to_openai_finish,
    anthropic_usage_to_openai,
    openai_chat_to_anthropic_message,
    openai_finish_to_anthropic_stop,
    openai_usage_to_anthropic,
)
from .sse import SSEEvent, SSEParser, encode_sse
from .streams import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    ProviderStreamError,
    Usage,
    is_content_anthropic,
    is_content_openai,
)

__all__ = [
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "ProviderStreamError",
    "SSEEvent",
    "SSEParser",
    "Untranslatable",
    "Usage",
    "anthropic_error",
    "anthropic_error_type",
    "anthropic_message_to_openai_chat",
    "anthropic_stop_to_openai_finish",
    "anthropic_to_openai_chat",
    "anthropic_usage_to_openai",
    "encode_sse",
    "is_content_anthropic",
    "is_content_openai",
    "openai_chat_to_anthropic",
    "openai_chat_to_anthropic_message",
    "openai_error",
    "openai_error_type",
    "openai_finish_to_anthropic_stop",
    "openai_usage_to_anthropic",
]
