"""The options model and the limits without sockets: references checked with their key paths,
limits that say nothing refused, and tokens charged in units of the per-minute budget."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sidecar_llm.config import Limits, LLMOptions
from sidecar_llm.limits import GroupLimiter, LimitExceeded

from sidecar import Decision, Limit
from sidecar.testing import make_exchange

KEY = {"env": "K"}


def opts(groups: dict[str, Any]) -> dict[str, Any]:
    provider = {"kind": "openai", "base_url": "http://a/v1", "api_key": KEY}
    return {"providers": {"a": provider}, "groups": groups}


@pytest.mark.parametrize(
    ("groups", "problem"),
    [
        ({"g": {"deployments": [{"provider": "b", "model": "m"}]}}, "deployments[0].provider"),
        ({"g": {"deployments": [{"provider": "a", "model": "m"}], "fallbacks": ["h"]}}, "'h'"),
        ({"g": {"deployments": [{"provider": "a", "model": "m"}], "fallbacks": ["g"]}}, "itself"),
        ({"g": {"deployments": []}}, "deployments"),
        ({"g g": {"deployments": [{"provider": "a", "model": "m"}]}}, "plain name"),
    ],
)
def test_bad_references_are_refused_naming_where(groups: dict[str, Any], problem: str) -> None:
    """A deployment's unknown provider, a missing or self fallback, an empty group are errors."""
    with pytest.raises(ValidationError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        LLMOptions.model_validate(opts(groups))


def test_a_key_is_a_reference_never_a_value() -> None:
    """An inline key string is refused: keys are given as {env} or {file}."""
    bad = opts({"g": {"deployments": [{"provider": "a", "model": "m"}]}})
    bad["providers"]["a"]["api_key"] = "sk-inline"
    with pytest.raises(ValidationError, match="api_key"):
        LLMOptions.model_validate(bad)


def test_limits_without_a_limit_are_refused() -> None:
    """`limits` naming only a backend limits nothing: an error, not a silent no-op."""
    with pytest.raises(ValidationError, match="requests_per_minute"):
        Limits(backend="b")


class Backend:
    """A backend that admits ``budget`` calls per key, counting what it was asked."""

    name = "test"
    fail_open = True

    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget
        self.asked: list[tuple[str, Limit]] = []

    async def decide(self, key: str, limit: Limit) -> Decision | None:
        self.asked.append((key, limit))
        if self.budget is None:
            return None
        used = sum(1 for k, _ in self.asked if k == key)
        return Decision(used <= self.budget, 0, 0.0 if used <= self.budget else 2.5)


async def test_tokens_are_charged_in_units_rounded_up() -> None:
    """1000 tokens/min is 100 units of 10: a 95-token call takes 10 units in all."""
    backend = Backend(budget=1000)
    limiter = GroupLimiter(backend, Limits(backend="b", tokens_per_minute=1000), "llm", "g")
    await limiter.admit("k")
    await limiter.charge("k", 95)
    assert [k for k, _ in backend.asked] == ["k:tok"] * 10
    assert backend.asked[0][1] == Limit(100 / 60, 100)


async def test_a_spent_budget_refuses_with_the_backends_wait() -> None:
    """When the backend refuses, the call is refused with its Retry-After."""
    limiter = GroupLimiter(Backend(budget=1), Limits(backend="b", requests_per_minute=1), "u", "g")
    await limiter.admit("k")
    with pytest.raises(LimitExceeded) as info:
        await limiter.admit("k")
    assert info.value.what == "requests" and info.value.retry_after == 2.5


async def test_an_undecided_backend_follows_on_error() -> None:
    """No decision in time: admitted when the backend fails open, refused when it fails closed."""
    backend = Backend(budget=None)
    limiter = GroupLimiter(backend, Limits(backend="b", requests_per_minute=5), "u", "g")
    await limiter.admit("k")
    backend.fail_open = False
    with pytest.raises(LimitExceeded):
        await limiter.admit("k")


def test_the_key_header_value_is_hashed_into_the_key() -> None:
    """Budgets split by a header's value; the value itself never appears in the key."""
    limits = Limits(backend="b", requests_per_minute=5, key_header="x-team")
    limiter = GroupLimiter(Backend(), limits, "llm", "g")
    a = limiter.key(make_exchange(headers={"x-team": "secret-team-a"}))
    b = limiter.key(make_exchange(headers={"x-team": "team-b"}))
    assert a != b and a.startswith("llm:llm:g:") and "secret-team-a" not in a
