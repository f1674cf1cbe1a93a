"""Refusals and the providers' error bodies.

`Untranslatable` is raised by every translator when a field of a request or response has no
faithful equivalent on the other side; the gateway turns it into a 400 naming the field.
`openai_error` and `anthropic_error` build the JSON bodies each provider's official SDK parses
into its matching exception class. This module builds bodies; it does not pick statuses or send
anything.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Untranslatable",
    "anthropic_error",
    "anthropic_error_type",
    "openai_error",
    "openai_error_type",
]


class Untranslatable(ValueError):
    """A field that cannot be expressed on the other provider's side.

    `field` is the JSON path inside the body as the app sent it (`messages[2].content[0].type`,
    `logprobs`, `n`); `reason` says what the other side lacks.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


# The `type` OpenAI's API puts in its error object for each status it answers with. The SDK
# chooses its exception class by status alone, so the type is for humans and logs.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

# Anthropic's documented status -> error type table (its "HTTP errors" page); other 4xx are
# documented as invalid_request_error, other 5xx as api_error.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def openai_error_type(status: int) -> str:
    """The `error.type` OpenAI uses for `status` (`server_error` for any 5xx)."""
    if status >= 500:
        return "server_error"
    return _OPENAI_TYPES.get(status, "invalid_request_error")


def anthropic_error_type(status: int) -> str:
    """The `error.type` Anthropic documents for `status` (`api_error` for unlisted 5xx)."""
    if status in _ANTHROPIC_TYPES:
        return _ANTHROPIC_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def openai_error(
    status: int,
    message: str,
    *,
    type_: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.

    A 429 without an explicit code gets `rate_limit_exceeded`, the code OpenAI sends for rate
    limits (quota exhaustion is a 429 too, but the caller must say so with
    `type_="insufficient_quota", code="insufficient_quota"`).
    """
    if code is None and status == 429 and type_ in (None, "rate_limit_error"):
        code = "rate_limit_exceeded"
    return {
        "error": {
            "message": message,
            "type": type_ if type_ is not None else openai_error_type(status),
            "param": param,
            "code": code,
        }
    }


def anthropic_error(status: int, message: str, *, type_: str | None = None) -> dict[str, Any]:
    """Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`."""
    return {
        "type": "error",
        "error": {
            "type": type_ if type_ is not None else anthropic_error_type(status),
            "message": message,
        },
    }
