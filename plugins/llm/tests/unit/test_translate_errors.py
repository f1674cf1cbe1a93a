"""Error bodies in each provider's shape, the way their official SDKs parse them."""

from __future__ import annotations

import anthropic
import openai
import pytest
from sidecar_llm.translate import anthropic_error, openai_error, openai_error_type
from translate_sdk import anthropic_answering, openai_answering


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "server_error"),
        (503, "server_error"),
    ],
)
def test_openai_errors_take_their_type_from_the_status(status: int, error_type: str) -> None:
    """An OpenAI-front app gets `{"error": {message, type, param, code}}`."""
    body = openai_error(status, "went wrong")
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert (body["error"]["message"], body["error"]["type"]) == ("went wrong", error_type)


def test_openai_rate_limits_carry_openais_code_and_explicit_fields_win() -> None:
    """A 429 says rate_limit_exceeded; given type, code and param are used as given."""
    assert openai_error(429, "slow down")["error"]["code"] == "rate_limit_exceeded"
    quota = openai_error(429, "quota", type_="insufficient_quota", code="insufficient_quota")
    assert quota["error"]["type"] == quota["error"]["code"] == "insufficient_quota"
    refused = openai_error(400, "n: no", param="n", code="unsupported_parameter")
    assert refused == {
        "error": {
            "message": "n: no",
            "type": "invalid_request_error",
            "param": "n",
            "code": "unsupported_parameter",
        }
    }


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (409, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_anthropic_errors_take_their_documented_type_from_the_status(
    status: int, error_type: str
) -> None:
    """An Anthropic-front app gets `{"type": "error", "error": {type, message}}`."""
    assert anthropic_error(status, "went wrong") == {
        "type": "error",
        "error": {"type": error_type, "message": "went wrong"},
    }
    assert anthropic_error(status, "x", type_="custom")["error"]["type"] == "custom"


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_the_openai_sdk_raises_its_matching_exception(
    status: int, exception: type[openai.APIStatusError]
) -> None:
    """The app's `except openai.RateLimitError` (and the others) work on our bodies."""
    client = openai_answering(openai_error(status, "went wrong", param="n"), status=status)
    with pytest.raises(exception) as raised:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert "went wrong" in raised.value.message
    assert (raised.value.type, raised.value.param) == (openai_error_type(status), "n")


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, anthropic.BadRequestError),
        (401, anthropic.AuthenticationError),
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (529, anthropic.APIStatusError),
    ],
)
def test_the_anthropic_sdk_raises_its_matching_exception(
    status: int, exception: type[anthropic.APIStatusError]
) -> None:
    """The app's `except anthropic.RateLimitError` (and the others) work on our bodies."""
    client = anthropic_answering(anthropic_error(status, "went wrong"), status=status)
    with pytest.raises(exception) as raised:
        client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == status
    assert raised.value.body == anthropic_error(status, "went wrong")
