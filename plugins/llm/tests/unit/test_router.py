"""The router without sockets: weighted order, fallbacks, cooldown after failures or a
Retry-After, recovery, and an empty plan with the wait when everything cools down."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from sidecar_llm.config import LLMOptions
from sidecar_llm.router import Router


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def options(**extra: Any) -> LLMOptions:
    key = {"env": "K"}
    return LLMOptions.model_validate(
        {
            "providers": {
                "a": {"kind": "openai", "base_url": "http://a/v1", "api_key": key},
                "b": {"kind": "openai", "base_url": "http://b/v1", "api_key": key},
                "c": {"kind": "anthropic", "base_url": "http://c", "api_key": key},
            },
            "groups": {
                "big": {
                    "deployments": [
                        {"provider": "a", "model": "gpt-4o", "weight": 3},
                        {"provider": "b", "model": "gpt-4o", "weight": 1},
                    ],
                    "fallbacks": ["claude"],
                },
                "claude": {
                    "deployments": [{"provider": "c", "model": "claude-sonnet-4-5"}],
                    "fallbacks": ["big"],  # a cycle: each group is tried once
                },
            },
            **extra,
        }
    )


def test_weighted_first_choice_then_the_rest_then_fallbacks() -> None:
    """Weight 3:1 makes a first about 3 times as often; every plan ends with the fallback."""
    router = Router(options(), rng=random.Random(7))  # noqa: S311 - a seeded draw, not a secret
    firsts = Counter()
    for _ in range(2000):
        plan, wait = router.plan("big")
        assert wait == 0.0
        assert [t.provider for t in plan[2:]] == ["c"] and len(plan) == 3
        assert {t.provider for t in plan[:2]} == {"a", "b"}
        firsts[plan[0].provider] += 1
    assert 2.5 < firsts["a"] / firsts["b"] < 3.5


def test_failures_in_the_window_cool_a_deployment_down_until_it_recovers() -> None:
    """Three failures within 60 s skip it for 30 s; failures further apart do not."""
    clock = Clock()
    router = Router(options(), clock=clock, rng=random.Random(1))  # noqa: S311 - a seeded draw, not a secret
    a = next(t for t in router.plan("big")[0] if t.provider == "a")
    assert not router.failed(a) and not router.failed(a)
    clock.now += 61  # the first two left the window
    assert not router.failed(a)
    assert not router.failed(a)
    assert router.failed(a)  # three within the window
    assert "a" not in [t.provider for t in router.plan("big")[0]]
    clock.now += 29.9
    assert "a" not in [t.provider for t in router.plan("big")[0]]
    clock.now += 0.2
    assert "a" in [t.provider for t in router.plan("big")[0]]


def test_retry_after_cools_down_at_once_and_is_capped() -> None:
    """A provider's Retry-After is believed at once, but never past max_retry_after."""
    clock = Clock()
    router = Router(options(cooldown={"max_retry_after": "10s"}), clock=clock)
    c = router.plan("claude")[0][0]
    assert router.failed(c, retry_after=3600)
    clock.now += 9.9
    assert {t.provider for t in router.plan("claude")[0]} == {"a", "b"}  # fallbacks only
    clock.now += 0.2
    assert router.plan("claude")[0][0].provider == "c"


def test_a_success_clears_the_failure_count() -> None:
    """Failures separated by a success do not add up to a cooldown."""
    router = Router(options(), clock=Clock())
    b = next(t for t in router.plan("big")[0] if t.provider == "b")
    router.failed(b)
    router.failed(b)
    router.succeeded(b)
    assert not router.failed(b)


def test_everything_cooling_down_gives_an_empty_plan_and_the_shortest_wait() -> None:
    """With no deployment left the plan is empty and says when the first one is back."""
    clock = Clock()
    router = Router(options(), clock=clock)
    for target, wait in zip(router.plan("big")[0], (5, 20, 40), strict=True):
        router.failed(target, retry_after=wait)
    plan, wait = router.plan("big")
    assert plan == [] and wait == 5
    assert router.cooling()[0]["seconds_left"] in (5, 20, 40)
