"""Request bodies, OpenAI Chat Completions <-> Anthropic Messages.

Translates the top-level fields (model, limits, sampling, stop sequences, tools, tool choice,
streaming, end-user id) and hands the conversation to `messages`. A field that would change the
answer and has no faithful equivalent raises `Untranslatable`; a field that changes only cost,
latency or storage on the source side is dropped, and the module says which where it drops it.
Picking the deployment's model is the router's business: `model` is copied as given.
"""

from __future__ import annotations

from typing import Any

from .errors import Untranslatable
from .messages import anthropic_messages_to_openai, openai_messages_to_anthropic

__all__ = ["anthropic_to_openai_chat", "openai_chat_to_anthropic"]

# OpenAI fields accepted only at their neutral value, with why any other value is refused.
_OPENAI_NEUTRAL: dict[str, tuple[tuple[object, ...], str]] = {
    "n": ((1,), "Anthropic returns one choice per call"),
    "logprobs": ((False,), "Anthropic returns no token log probabilities"),
    "top_logprobs": ((0,), "Anthropic returns no token log probabilities"),
    "presence_penalty": ((0,), "Anthropic has no repetition penalties"),
    "frequency_penalty": ((0,), "Anthropic has no repetition penalties"),
    "logit_bias": (({},), "Anthropic has no token biasing"),
    "response_format": (({"type": "text"},), "structured output modes are not translated"),
    "modalities": ((["text"],), "Anthropic answers in text only"),
    "service_tier": (("auto", "default"), "OpenAI service tiers do not exist at Anthropic"),
    "seed": ((), "Anthropic has no seeded sampling"),
    "audio": ((), "Anthropic answers in text only"),
    "reasoning_effort": ((), "reasoning settings are not translated"),
}
# OpenAI fields dropped because they change no output: `stream_options` (Anthropic streams
# always carry usage; the stream converter decides whether the app sees it), `store` and
# `metadata` (OpenAI-side storage of the completion), prompt-cache hints (cost and speed only).
_OPENAI_DROPPED = frozenset(
    {
        "stream_options",
        "store",
        "metadata",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
    }
)
_OPENAI_HANDLED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "user",
        "safety_identifier",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
    }
)
# OpenAI accepts up to four stop sequences; Anthropic accepts more.
_OPENAI_MAX_STOP = 4


def _refuse_unknown_openai(body: dict[str, Any]) -> None:
    for key, value in body.items():
        if value is None or key in _OPENAI_HANDLED or key in _OPENAI_DROPPED:
            continue
        neutral, reason = _OPENAI_NEUTRAL.get(key, ((), "has no Anthropic equivalent"))
        if value not in neutral:
            raise Untranslatable(key, reason)


def _openai_tools(tools: object) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise Untranslatable("tools", "expected a list")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise Untranslatable(f"tools[{i}].type", "only function tools translate")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise Untranslatable(f"tools[{i}].function", "expected an object")
        for key in function:
            if key not in ("name", "description", "parameters", "strict"):
                raise Untranslatable(f"tools[{i}].function.{key}", "has no Anthropic equivalent")
        converted: dict[str, Any] = {"name": function.get("name")}
        if function.get("description") is not None:
            converted["description"] = function["description"]
        # OpenAI lets a function omit its parameters; Anthropic requires an object schema.
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        converted["input_schema"] = schema
        if function.get("strict") is not None:
            converted["strict"] = function["strict"]
        out.append(converted)
    return out


def _openai_tool_choice(choice: object, parallel: object) -> dict[str, Any] | None:
    if choice is None:
        converted: dict[str, Any] | None = None
    elif choice == "auto":
        converted = {"type": "auto"}
    elif choice == "none":
        converted = {"type": "none"}
    elif choice == "required":
        converted = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise Untranslatable("tool_choice.function.name", "expected a string")
        converted = {"type": "tool", "name": name}
    else:
        raise Untranslatable("tool_choice", "only auto, none, required and a named function")
    if parallel is False:
        # Anthropic carries the switch on tool_choice; auto is both sides' default.
        converted = converted or {"type": "auto"}
        if converted["type"] != "none":
            converted["disable_parallel_tool_use"] = True
    return converted


def openai_chat_to_anthropic(body: dict[str, Any], *, default_max_tokens: int) -> dict[str, Any]:
    """An OpenAI Chat Completions request -> an Anthropic Messages request.

    Anthropic requires `max_tokens`: `max_completion_tokens`, else `max_tokens`, else
    `default_max_tokens`. Raises `Untranslatable` for any field without a faithful equivalent.
    """
    _refuse_unknown_openai(body)
    system, messages = openai_messages_to_anthropic(body.get("messages"))
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if system is not None:
        out["system"] = system
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    out["max_tokens"] = limit if limit is not None else default_max_tokens
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 1:
            raise Untranslatable("temperature", "Anthropic accepts a temperature from 0 to 1")
        out["temperature"] = temperature
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop is not None:
        if not isinstance(stop, str | list):
            raise Untranslatable("stop", "expected a string or a list")
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream") is not None:
        out["stream"] = bool(body["stream"])
    user = body.get("user") if body.get("user") is not None else body.get("safety_identifier")
    if user is not None:
        out["metadata"] = {"user_id": user}
    tools = body.get("tools")
    if tools is not None:
        out["tools"] = _openai_tools(tools)
    # Without tools, parallel_tool_calls has nothing to act on (Anthropic rejects it alone).
    parallel = body.get("parallel_tool_calls") if tools else None
    choice = _openai_tool_choice(body.get("tool_choice"), parallel)
    if choice is not None:
        out["tool_choice"] = choice
    return out


# Anthropic fields accepted only at their neutral value, with why any other value is refused.
_ANTHROPIC_NEUTRAL: dict[str, tuple[tuple[object, ...], str]] = {
    "thinking": (({"type": "disabled"},), "extended thinking is not translated"),
    "service_tier": (("auto",), "Anthropic service tiers do not exist at OpenAI"),
    "top_k": ((), "OpenAI has no top-k sampling"),
}
_ANTHROPIC_HANDLED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "metadata",
        "tools",
        "tool_choice",
    }
)
# Top-level prompt caching changes cost and speed, never output.
_ANTHROPIC_DROPPED = frozenset({"cache_control"})


def _refuse_unknown_anthropic(body: dict[str, Any]) -> None:
    for key, value in body.items():
        if value is None or key in _ANTHROPIC_HANDLED or key in _ANTHROPIC_DROPPED:
            continue
        neutral, reason = _ANTHROPIC_NEUTRAL.get(key, ((), "has no OpenAI equivalent"))
        if value not in neutral:
            raise Untranslatable(key, reason)


def _anthropic_tools(tools: object) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise Untranslatable("tools", "expected a list")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            # Anthropic's server tools (web search, bash, text editor ...) run at Anthropic.
            raise Untranslatable(f"tools[{i}].type", "only custom tools translate")
        for key, value in tool.items():
            known = ("type", "name", "description", "input_schema", "strict", "cache_control")
            if key not in known and value is not None:
                raise Untranslatable(f"tools[{i}].{key}", "has no OpenAI equivalent")
        function: dict[str, Any] = {"name": tool.get("name")}
        if tool.get("description") is not None:
            function["description"] = tool["description"]
        if tool.get("input_schema") is not None:
            function["parameters"] = tool["input_schema"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _anthropic_tool_choice(choice: object) -> tuple[object, bool]:
    """`(tool_choice, parallel_tool_calls)` for an Anthropic `tool_choice`."""
    if not isinstance(choice, dict):
        raise Untranslatable("tool_choice", "expected an object")
    kind = choice.get("type")
    converted: object
    if kind == "auto":
        converted = "auto"
    elif kind == "any":
        converted = "required"
    elif kind == "none":
        converted = "none"
    elif kind == "tool":
        converted = {"type": "function", "function": {"name": choice.get("name")}}
    else:
        raise Untranslatable("tool_choice.type", f"{kind!r} has no OpenAI equivalent")
    return converted, not choice.get("disable_parallel_tool_use", False)


def anthropic_to_openai_chat(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request -> an OpenAI Chat Completions request.

    `max_tokens` becomes `max_completion_tokens`; a streamed request asks for the usage chunk
    (`stream_options.include_usage`), since an Anthropic stream always reports usage. Raises
    `Untranslatable` for any field without a faithful equivalent.
    """
    _refuse_unknown_anthropic(body)
    messages = anthropic_messages_to_openai(body.get("system"), body.get("messages"))
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("max_tokens") is not None:
        out["max_completion_tokens"] = body["max_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop_sequences")
    if stop:
        if not isinstance(stop, list) or len(stop) > _OPENAI_MAX_STOP:
            raise Untranslatable("stop_sequences", "OpenAI accepts at most 4 stop sequences")
        out["stop"] = list(stop)
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
            raise Untranslatable("metadata", "only metadata.user_id translates")
        if metadata.get("user_id") is not None:
            out["user"] = metadata["user_id"]
    tools = body.get("tools")
    if tools is not None:
        out["tools"] = _anthropic_tools(tools)
    if body.get("tool_choice") is not None:
        choice, parallel = _anthropic_tool_choice(body["tool_choice"])
        out["tool_choice"] = choice
        # OpenAI rejects parallel_tool_calls without tools; false is the only non-default.
        if not parallel and tools and choice != "none":
            out["parallel_tool_calls"] = False
    return out
