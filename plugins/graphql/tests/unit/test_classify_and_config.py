"""Answers classified as GraphQL defines failure, and options refused with their key path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from sidecar_graphql.classify import make_classifier, outcome_of
from sidecar_graphql.config import GraphQLOptions

from sidecar import Headers, Response, UpstreamConnectError


def answer(body: Any, status: int = 200) -> Response:
    return Response(
        status, Headers([("content-type", "application/json")]), json.dumps(body).encode()
    )


CLASSIFY = make_classifier(GraphQLOptions(code_statuses={"RATE_LIMITED": 503}))


def test_errors_without_data_are_a_failure_by_code() -> None:
    """A 200 with errors and no data gets graphql-errors, a condition per code, and the
    conditions of the status the code maps to (so the default breaker and retry lists apply)."""
    conditions = CLASSIFY(
        answer({"errors": [{"message": "x", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}),
        None,
    )
    assert conditions == ("graphql-errors", "graphql-internal-server-error", "500", "5xx")
    conditions = CLASSIFY(
        answer(
            {"data": None, "errors": [{"message": "x", "extensions": {"code": "RATE_LIMITED"}}]}
        ),
        None,
    )
    assert conditions[-2:] == ("503", "5xx")


def test_errors_without_a_code_take_the_uncoded_status() -> None:
    """An errors-only answer whose errors carry no code counts as uncoded_status (500)."""
    assert CLASSIFY(answer({"errors": [{"message": "x"}]}), None) == (
        "graphql-errors",
        "500",
        "5xx",
    )


def test_data_with_errors_and_plain_data_are_not_failures() -> None:
    """A partial answer served data: not a failure; nor is a plain success."""
    assert CLASSIFY(answer({"data": {"a": 1}, "errors": [{"message": "x"}]}), None) == ()
    assert CLASSIFY(answer({"data": {"errors": 1}}), None) == ()
    assert outcome_of(b'{"data": {"a": 1}, "errors": [{"message": "x"}]}').errors


def test_other_statuses_and_transport_errors_are_classified_as_http() -> None:
    """A 503 from the server and a refused connect are what the HTTP adapter says."""
    assert CLASSIFY(answer({}, 503), None) == ("503", "5xx")
    assert CLASSIFY(None, UpstreamConnectError("x")) == ("connect-failure",)


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"limits": {"max_depth": 0}}, ("limits", "max_depth")),
        ({"limits": {"max_tokens": "many"}}, ("limits", "max_tokens")),
        ({"idempotent_mutations": ["not a name"]}, ("idempotent_mutations",)),
        ({"code_statuses": {"X": 200}}, ("code_statuses",)),
        ({"persisted_queries": {"cache": {"type": "redis"}}}, ("persisted_queries", "cache")),
        ({"limit": {}}, ("limit",)),
    ],
)
def test_bad_options_name_their_key(options: dict[str, Any], where: tuple[str, ...]) -> None:
    """Each wrong option is refused at its own key (sidecar check prints the path)."""
    with pytest.raises(ValidationError) as caught:
        GraphQLOptions.model_validate(options)
    assert caught.value.errors()[0]["loc"][: len(where)] == where
