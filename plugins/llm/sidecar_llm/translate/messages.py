"""Conversation turns and their content, OpenAI Chat Completions <-> Anthropic Messages.

Covers roles, the system prompt, text and image parts, tool calls and tool results. The
top-level request fields (sampling, tools, limits) are `requests`' concern, not this module's.
Anything without a faithful equivalent raises `Untranslatable` naming its JSON path.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import Untranslatable

__all__ = ["anthropic_messages_to_openai", "openai_messages_to_anthropic"]

# The image types Anthropic accepts as base64 data; OpenAI takes the same ones as data URLs.
_IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_SYSTEM_ROLES = frozenset({"system", "developer"})
# Keys that official SDKs echo back when an app re-sends a response message; empty they carry
# nothing, and `annotations` (citations of earlier output) never reach the model.
_ECHOED_EMPTY = frozenset({"audio", "function_call", "refusal", "annotations"})
# Prompt-caching hints: they change what a call costs and how fast it is, never its output.
_CACHE_HINTS = frozenset({"cache_control", "prompt_cache_breakpoint"})
_TRAILING_ASSISTANT = "a last assistant turn is continued by Anthropic but answered by OpenAI"


def _as_list(value: object, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise Untranslatable(field, "expected a list")
    return value


def _as_dict(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Untranslatable(field, "expected an object")
    return value


def _refuse_unknown_keys(obj: dict[str, Any], known: frozenset[str], field: str) -> None:
    for key, value in obj.items():
        if key in known or key in _CACHE_HINTS or value is None:
            continue
        raise Untranslatable(f"{field}.{key}", "has no equivalent on the other provider")


# ---- OpenAI -> Anthropic -------------------------------------------------------------------


def _openai_texts(content: object, field: str) -> list[str]:
    """Text of content that may only hold text (system, developer and tool messages)."""
    if isinstance(content, str):
        return [content]
    texts = []
    for j, part in enumerate(_as_list(content, field)):
        part = _as_dict(part, f"{field}[{j}]")
        if part.get("type") != "text":
            raise Untranslatable(f"{field}[{j}].type", "only text parts can be translated here")
        _refuse_unknown_keys(part, frozenset({"type", "text"}), f"{field}[{j}]")
        texts.append(str(part.get("text", "")))
    return texts


def _openai_image(part: dict[str, Any], field: str) -> dict[str, Any]:
    image = _as_dict(part.get("image_url"), f"{field}.image_url")
    if image.get("detail") not in (None, "auto"):
        raise Untranslatable(f"{field}.image_url.detail", "Anthropic has no image detail level")
    url = image.get("url")
    if not isinstance(url, str):
        raise Untranslatable(f"{field}.image_url.url", "expected a string")
    if not url.startswith("data:"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    header, _, data = url[len("data:") :].partition(",")
    media_type, _, encoding = header.partition(";")
    if encoding != "base64" or media_type not in _IMAGE_MEDIA_TYPES:
        raise Untranslatable(
            f"{field}.image_url.url",
            "data URLs must be base64 image/jpeg, image/png, image/gif or image/webp",
        )
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _openai_user_content(content: object, field: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    blocks = []
    for j, part in enumerate(_as_list(content, field)):
        part = _as_dict(part, f"{field}[{j}]")
        kind = part.get("type")
        if kind == "text":
            _refuse_unknown_keys(part, frozenset({"type", "text"}), f"{field}[{j}]")
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            _refuse_unknown_keys(part, frozenset({"type", "image_url"}), f"{field}[{j}]")
            blocks.append(_openai_image(part, f"{field}[{j}]"))
        else:
            raise Untranslatable(f"{field}[{j}].type", f"{kind!r} parts have no Anthropic block")
    return blocks


def _tool_input(arguments: object, field: str) -> dict[str, Any]:
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else None
    except (ValueError, RecursionError):  # RecursionError: nested past the parser
        parsed = None
    if not isinstance(parsed, dict):
        raise Untranslatable(field, "tool call arguments must be a JSON object")
    return parsed


def _openai_assistant_content(msg: dict[str, Any], field: str) -> str | list[dict[str, Any]]:
    content = msg.get("content")
    texts = [] if content is None else _openai_assistant_texts(content, f"{field}.content")
    if isinstance(msg.get("refusal"), str):
        texts.append(msg["refusal"])
    calls = msg.get("tool_calls") or []
    if not calls and len(texts) == 1:
        return texts[0]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": t} for t in texts if t]
    for k, call in enumerate(_as_list(calls, f"{field}.tool_calls")):
        call = _as_dict(call, f"{field}.tool_calls[{k}]")
        if call.get("type", "function") != "function":
            raise Untranslatable(f"{field}.tool_calls[{k}].type", "only function calls translate")
        function = _as_dict(call.get("function"), f"{field}.tool_calls[{k}].function")
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": _tool_input(
                    function.get("arguments"), f"{field}.tool_calls[{k}].function.arguments"
                ),
            }
        )
    return blocks


def _openai_assistant_texts(content: object, field: str) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts = []
    for j, part in enumerate(_as_list(content, field)):
        part = _as_dict(part, f"{field}[{j}]")
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "refusal":
            texts.append(str(part.get("refusal", "")))
        else:
            raise Untranslatable(f"{field}[{j}].type", "only text and refusal parts translate")
    return texts


def openai_messages_to_anthropic(
    messages: object,
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """OpenAI `messages` -> Anthropic `(system, messages)`.

    Leading `system`/`developer` messages become `system` (one string, or text blocks when
    there are several); one after the conversation started is refused, since Anthropic has no
    system turn at a position. Consecutive `tool` messages become one user turn of
    `tool_result` blocks.
    """
    system: list[str] = []
    out: list[dict[str, Any]] = []
    previous_role = None
    items = _as_list(messages, "messages")
    for i, msg in enumerate(items):
        field = f"messages[{i}]"
        msg = _as_dict(msg, field)
        role = msg.get("role")
        if msg.get("name") is not None:
            raise Untranslatable(f"{field}.name", "Anthropic messages have no participant names")
        if role in _SYSTEM_ROLES:
            if out:
                raise Untranslatable(
                    f"{field}.role", "a system message after the first turn has no equivalent"
                )
            _refuse_unknown_keys(msg, frozenset({"role", "content", "name"}), field)
            system.extend(_openai_texts(msg.get("content"), f"{field}.content"))
        elif role == "user":
            _refuse_unknown_keys(msg, frozenset({"role", "content", "name"}), field)
            content = _openai_user_content(msg.get("content"), f"{field}.content")
            out.append({"role": "user", "content": content})
        elif role == "assistant":
            known = frozenset({"role", "content", "name", "tool_calls"}) | _ECHOED_EMPTY
            _refuse_unknown_keys(msg, known, field)
            for key in ("audio", "function_call"):
                if msg.get(key):
                    raise Untranslatable(f"{field}.{key}", "has no Anthropic equivalent")
            out.append({"role": "assistant", "content": _openai_assistant_content(msg, field)})
        elif role == "tool":
            _refuse_unknown_keys(msg, frozenset({"role", "content", "tool_call_id"}), field)
            texts = _openai_texts(msg.get("content"), f"{field}.content")
            result = {
                "type": "tool_result",
                "tool_use_id": msg.get("tool_call_id"),
                "content": texts[0]
                if isinstance(msg.get("content"), str)
                else [{"type": "text", "text": t} for t in texts],
            }
            if previous_role == "tool":
                out[-1]["content"].append(result)
            else:
                out.append({"role": "user", "content": [result]})
        else:
            raise Untranslatable(f"{field}.role", f"role {role!r} has no Anthropic equivalent")
        previous_role = role
    if out and out[-1]["role"] == "assistant":
        # OpenAI answers after a trailing assistant message; Anthropic would continue it.
        raise Untranslatable(f"messages[{len(items) - 1}].role", _TRAILING_ASSISTANT)
    if not system:
        return None, out
    if len(system) == 1:
        return system[0], out
    return [{"type": "text", "text": text} for text in system], out


# ---- Anthropic -> OpenAI -------------------------------------------------------------------


def _anthropic_texts(content: object, field: str) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts = []
    for j, block in enumerate(_as_list(content, field)):
        block = _as_dict(block, f"{field}[{j}]")
        if block.get("type") != "text":
            raise Untranslatable(f"{field}[{j}].type", "only text blocks can be translated here")
        _refuse_unknown_keys(block, frozenset({"type", "text"}), f"{field}[{j}]")
        texts.append(str(block.get("text", "")))
    return texts


def _anthropic_image(block: dict[str, Any], field: str) -> dict[str, Any]:
    _refuse_unknown_keys(block, frozenset({"type", "source"}), field)
    source = _as_dict(block.get("source"), f"{field}.source")
    if source.get("type") == "url":
        url = source.get("url")
    elif source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    else:
        raise Untranslatable(f"{field}.source.type", "only url and base64 images translate")
    return {"type": "image_url", "image_url": {"url": url}}


def _anthropic_tool_result(block: dict[str, Any], field: str) -> dict[str, Any]:
    known = frozenset({"type", "tool_use_id", "content", "is_error"})
    _refuse_unknown_keys(block, known, field)
    if block.get("is_error"):
        raise Untranslatable(f"{field}.is_error", "OpenAI tool messages have no error flag")
    content = block.get("content", "")
    texts = _anthropic_texts(content, f"{field}.content")
    return {
        "role": "tool",
        "tool_call_id": block.get("tool_use_id"),
        "content": content if isinstance(content, str) else _text_parts(texts),
    }


def openai_tool_call(block: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic ``tool_use`` block as an OpenAI tool call (arguments as a JSON string)."""
    arguments = json.dumps(block.get("input", {}), separators=(",", ":"))
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": arguments},
    }


def _text_parts(texts: list[str]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text} for text in texts]


def _anthropic_user(content: object, field: str) -> list[dict[str, Any]]:
    """One user turn -> OpenAI messages: `tool` messages and user messages, in block order."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_as_list(content, field)):
        block = _as_dict(block, f"{field}[{j}]")
        kind = block.get("type")
        if kind == "tool_result":
            if parts:
                out.append({"role": "user", "content": parts})
                parts = []
            out.append(_anthropic_tool_result(block, f"{field}[{j}]"))
        elif kind == "text":
            _refuse_unknown_keys(block, frozenset({"type", "text"}), f"{field}[{j}]")
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_anthropic_image(block, f"{field}[{j}]"))
        else:
            raise Untranslatable(f"{field}[{j}].type", f"{kind!r} blocks have no OpenAI part")
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _anthropic_assistant(content: object, field: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(_as_list(content, field)):
        block = _as_dict(block, f"{field}[{j}]")
        kind = block.get("type")
        if kind == "text":
            _refuse_unknown_keys(block, frozenset({"type", "text"}), f"{field}[{j}]")
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            _refuse_unknown_keys(block, frozenset({"type", "id", "name", "input"}), f"{field}[{j}]")
            calls.append(openai_tool_call(block))
        else:
            raise Untranslatable(f"{field}[{j}].type", f"{kind!r} blocks have no OpenAI part")
    message: dict[str, Any] = {"role": "assistant"}
    message["content"] = texts[0] if len(texts) == 1 else (_text_parts(texts) or None)
    if calls:
        message["tool_calls"] = calls
    return message


def anthropic_messages_to_openai(system: object, messages: object) -> list[dict[str, Any]]:
    """Anthropic `system` and `messages` -> OpenAI `messages`.

    `system` becomes one leading `system` message; a user turn's `tool_result` blocks become
    `tool` messages in place; an assistant turn's `tool_use` blocks become `tool_calls`.
    """
    out: list[dict[str, Any]] = []
    if system is not None:
        texts = _anthropic_texts(system, "system")
        content: str | list[dict[str, Any]] = (
            system if isinstance(system, str) else _text_parts(texts)
        )
        out.append({"role": "system", "content": content})
    items = _as_list(messages, "messages")
    for i, msg in enumerate(items):
        field = f"messages[{i}]"
        msg = _as_dict(msg, field)
        _refuse_unknown_keys(msg, frozenset({"role", "content"}), field)
        role = msg.get("role")
        if role == "user":
            out.extend(_anthropic_user(msg.get("content"), f"{field}.content"))
        elif role == "assistant":
            out.append(_anthropic_assistant(msg.get("content"), f"{field}.content"))
        else:
            raise Untranslatable(f"{field}.role", f"role {role!r} is not translated")
        if role == "assistant" and i == len(items) - 1:
            # A trailing assistant turn is a prefill Anthropic continues; OpenAI answers after it.
            raise Untranslatable(f"{field}.role", _TRAILING_ASSISTANT)
    return out
