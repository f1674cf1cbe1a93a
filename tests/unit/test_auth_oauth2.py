"""Reading a token endpoint's answer: what is a token, and what an error may repeat."""

from __future__ import annotations

import json

import pytest

from sidecar.auth.oauth2 import _parse
from sidecar.auth.tokens import TokenFetchError


def answer(data: object) -> bytes:
    return json.dumps(data).encode()


def test_a_token_and_its_lifetime_are_read() -> None:
    """access_token and expires_in (a number, or a numeric string some IdPs send)."""
    assert _parse(200, answer({"access_token": "abc", "expires_in": 3600})) == ("abc", 3600.0)
    assert _parse(200, answer({"access_token": "abc", "expires_in": "60"})) == ("abc", 60.0)
    assert _parse(200, answer({"access_token": "abc"})) == ("abc", None)


@pytest.mark.parametrize(
    ("status", "body", "result", "reason"),
    [
        (401, answer({"error": "invalid_client"}), "rejected", "answered 401 (invalid_client)"),
        (500, b"<html>oops</html>", "rejected", "answered 500"),
        (200, b"not json", "invalid", "not a JSON object"),
        (200, answer({"token": "x"}), "invalid", "no access_token"),
        (200, answer({"access_token": "a\r\nb"}), "invalid", "cannot be sent in a header"),
        (200, b"x" * (64 * 1024 + 1), "invalid", "over 65536 bytes"),
    ],
)
def test_a_failed_answer_says_why_in_words_that_carry_no_secret(
    status: int, body: bytes, result: str, reason: str
) -> None:
    """Operators get the status and the OAuth error code, never the IdP's body."""
    with pytest.raises(TokenFetchError) as caught:
        _parse(status, body)
    assert caught.value.result == result and reason in caught.value.reason


def test_an_error_description_echoing_the_request_is_not_repeated() -> None:
    """An IdP that echoes the client secret in its error does not leak it through the sidecar."""
    body = answer({"error": "client secret s3cr3t is wrong", "error_description": "s3cr3t"})
    with pytest.raises(TokenFetchError) as caught:
        _parse(400, body)
    assert "s3cr3t" not in caught.value.reason and caught.value.reason.endswith("answered 400")
