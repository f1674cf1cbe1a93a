"""pydantic's validation errors, said in plain English with their key paths.

pydantic reports ``Input should be a valid integer, unable to parse string as an integer
[type=int_parsing, ...] For further information visit https://errors.pydantic.dev/...``; a config
file's reader wants ``http.max_headers: expected a whole number, got "abc"``. Each common error
type is mapped here; our own errors (durations, sizes, addresses, names) already read that way and
pass through. An unknown key gets a "did you mean" from the keys its section accepts.
"""

from __future__ import annotations

__all__ = ["validation_problems"]

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..errors import ConfigProblem
from .source import key_path
from .types import show

# Plain reasons by pydantic error type; "{got}" is the offending value as the file spells it.
_PLAIN: dict[str, str] = {
    "missing": "required key is missing",
    "string_type": "expected a string, got {got}",
    "int_type": "expected a whole number, got {got}",
    "int_parsing": "expected a whole number, got {got}",
    "int_from_float": "expected a whole number, got {got}",
    "float_type": "expected a number, got {got}",
    "float_parsing": "expected a number, got {got}",
    "finite_number": "expected a finite number, got {got}",
    "bool_type": "expected true or false, got {got}",
    "bool_parsing": "expected true or false, got {got}",
    "dict_type": "expected a mapping (key: value), got {got}",
    "mapping_type": "expected a mapping (key: value), got {got}",
    "model_type": "expected a mapping (key: value), got {got}",
    "model_attributes_type": "expected a mapping (key: value), got {got}",
    "list_type": "expected a list, got {got}",
    "tuple_type": "expected a list, got {got}",
    "set_type": "expected a list, got {got}",
    "none_required": "expected null, got {got}",
    "literal_error": "expected {expected}, got {got}",
    "enum": "expected {expected}, got {got}",
    "greater_than": "must be more than {gt}, got {got}",
    "greater_than_equal": "must be at least {ge}, got {got}",
    "less_than": "must be less than {lt}, got {got}",
    "less_than_equal": "must be at most {le}, got {got}",
    "multiple_of": "must be a multiple of {multiple_of}, got {got}",
    "string_too_short": "must be at least {min_length} characters long, got {got}",
    "string_too_long": "must be at most {max_length} characters long",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "string_pattern_mismatch": "must match {pattern}, got {got}",
    "url_parsing": "expected a URL, got {got}",
}


def validation_problems(
    error: ValidationError,
    file: str,
    prefix: Sequence[str | int] = (),
    model: type[BaseModel] | None = None,
) -> list[ConfigProblem]:
    """One :class:`ConfigProblem` per error; ``prefix`` is where the validated data sits in the
    file, ``model`` the validated class (for "did you mean")."""
    out: list[ConfigProblem] = []
    seen: set[ConfigProblem] = set()  # a list scan per error was quadratic in a long list
    for err in error.errors(include_url=False):
        loc = _clean(err["loc"])
        reason = _reason(err, model, loc)
        problem = ConfigProblem(file, key_path((*prefix, *loc)), reason)
        if problem not in seen:
            seen.add(problem)
            out.append(problem)
    return out


def _clean(loc: tuple[str | int, ...]) -> list[str | int]:
    # pydantic adds steps that are not keys: ``[key]`` (a dict key was wrong: the path already
    # ends at that key), ``function-after[...]`` and the like (validator wrappers)
    return [p for p in loc if not (isinstance(p, str) and p.startswith(("[", "function-")))]


def _reason(err: ErrorDetails, model: type[BaseModel] | None, loc: list[str | int]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return _unknown_key(model, loc)
    template = _PLAIN.get(kind)
    ctx = dict(err.get("ctx") or {})
    if template is None:
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if kind in ("value_error", "assertion_error") or kind not in _PYDANTIC_TYPES:
            return msg  # ours, or a plugin's own words
        return f"{msg[:1].lower()}{msg[1:]}, got {show(err.get('input'))}"
    if "expected" in ctx:
        ctx["expected"] = str(ctx["expected"]).replace("'", '"')
    ctx["got"] = show(err.get("input"))
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):
        return err["msg"]


def _unknown_key(model: type[BaseModel] | None, loc: list[str | int]) -> str:
    known = _keys_at(model, loc[:-1]) if model is not None else None
    if not known:
        return "unknown key"
    name = str(loc[-1]) if loc else ""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (this section takes: {', '.join(sorted(known))})"


def _keys_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """The keys the section at ``loc`` accepts, found by walking the model's annotations."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin is dict and len(args) == 2:
            current = args[1]  # ``part`` is the key
        elif origin in (list, tuple) and args:
            current = args[0]  # ``part`` is the index
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]`` → ``X``; ``X | None`` → ``X``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if len(models) == 1:
                return models[0]  # ``str | SecretRef``: only the model has keys
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


# pydantic's own error types we do not map: their message is reworded generically. Anything else
# is a custom error (``PydanticCustomError``) whose message is already meant for the reader.
_PYDANTIC_TYPES = frozenset(
    {
        "arguments_type",
        "bytes_type",
        "callable_type",
        "date_type",
        "datetime_type",
        "decimal_type",
        "frozen_set_type",
        "is_instance_of",
        "is_subclass_of",
        "iterable_type",
        "json_invalid",
        "json_type",
        "string_not_ascii",
        "string_sub_type",
        "string_unicode",
        "union_tag_invalid",
        "union_tag_not_found",
        "url_scheme",
        "url_syntax_violation",
        "url_too_long",
        "url_type",
        "uuid_type",
    }
)
