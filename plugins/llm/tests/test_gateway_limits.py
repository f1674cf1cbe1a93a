"""Requests and tokens per minute per group, through the sidecar's rate-limit backends: local,
and a real redis-server shared by two sidecars; a limited call is 429 in the app's shape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
import sidecar_llm
from gateway import anthropic_client, gateway_config, group, openai_client, openai_provider, user
from providers import FakeOpenAI, Reply

from sidecar.testing import RedisServer

pytestmark = pytest.mark.usefixtures("provider_keys")


def limited(url: str, limits: dict[str, Any], backend: dict[str, Any]) -> dict[str, Any]:
    """``gpt-4o`` on OpenAI with ``limits`` decided by the backend ``shared``."""
    return gateway_config(
        {"oa": openai_provider(url)},
        {"gpt-4o": group(("oa", "gpt-4o"), limits={"backend": "shared", **limits})},
        top={"ratelimit_backends": {"shared": backend}},
    )


async def test_requests_per_minute_refuse_in_both_shapes_with_retry_after(
    fake_openai: FakeOpenAI, sidecar_factory: Any
) -> None:
    """The third call in a minute of a 2/min group is 429 with Retry-After, in either shape."""
    config = limited(fake_openai.url, {"requests_per_minute": 2}, {"type": "local"})
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        client = openai_client(s.http_port)
        for _ in range(2):
            await client.chat.completions.create(model="gpt-4o", messages=user("x"))
        with pytest.raises(openai.RateLimitError, match="requests per minute") as info:
            await client.chat.completions.create(model="gpt-4o", messages=user("x"))
        assert 1 <= int(info.value.response.headers["retry-after"]) <= 30
        with pytest.raises(anthropic.RateLimitError):
            await anthropic_client(s.http_port).messages.create(
                model="gpt-4o", max_tokens=5, messages=user("x")
            )
    assert len(fake_openai.model_requests()) == 2


async def test_tokens_per_minute_are_charged_from_usage_and_split_by_key_header(
    fake_openai: FakeOpenAI, sidecar_factory: Any
) -> None:
    """A call that uses the minute's tokens (streamed) stops the next; another team has its own."""
    fake_openai.script(Reply(text="long answer", input_tokens=600, output_tokens=500))
    config = limited(
        fake_openai.url,
        {"tokens_per_minute": 1000, "key_header": "x-team"},
        {"type": "local"},
    )
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        client = openai_client(s.http_port)
        team_a = {"x-team": "a"}
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=user("x"), stream=True, extra_headers=team_a
        )
        _ = [c async for c in stream]
        refused: list[bool] = []
        deadline = time.monotonic() + 5  # usage is charged once the stream has ended
        while not refused and time.monotonic() < deadline:
            try:
                await client.chat.completions.create(
                    model="gpt-4o", messages=user("x"), extra_headers=team_a
                )
            except openai.RateLimitError as e:
                refused.append("tokens per minute" in str(e))
        assert refused == [True]
        await client.chat.completions.create(
            model="gpt-4o", messages=user("x"), extra_headers={"x-team": "b"}
        )


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A private redis-server on 127.0.0.1 (the test fails if it cannot start)."""
    with RedisServer() as server:
        yield server.url


async def test_two_sidecars_share_one_budget_through_redis(
    fake_openai: FakeOpenAI, sidecar_factory: Any, redis_url: str
) -> None:
    """Replicas configured alike share requests per minute: 3 calls in all, whichever replica."""
    backend = {"type": "redis", "url": redis_url, "timeout": "500ms", "on_error": "deny"}
    config = limited(fake_openai.url, {"requests_per_minute": 3}, backend)
    async with (
        sidecar_factory(config, plugins=[sidecar_llm]) as one,
        sidecar_factory(config, plugins=[sidecar_llm]) as two,
    ):
        clients = [openai_client(one.http_port), openai_client(two.http_port)]
        outcomes = []
        for i in range(5):
            try:
                await clients[i % 2].chat.completions.create(model="gpt-4o", messages=user("x"))
                outcomes.append("ok")
            except openai.RateLimitError:
                outcomes.append("limited")
    assert outcomes == ["ok", "ok", "ok", "limited", "limited"]
    assert len(fake_openai.model_requests()) == 3


async def test_two_sidecars_share_one_token_budget_through_redis(
    fake_openai: FakeOpenAI, sidecar_factory: Any, redis_url: str
) -> None:
    """Tokens one replica's call used are gone for the other: its next call is refused."""
    fake_openai.script(Reply(text="long answer", input_tokens=600, output_tokens=500))
    backend = {"type": "redis", "url": redis_url, "timeout": "500ms", "on_error": "deny"}
    config = limited(fake_openai.url, {"tokens_per_minute": 1000}, backend)
    async with (
        sidecar_factory(config, plugins=[sidecar_llm]) as one,
        sidecar_factory(config, plugins=[sidecar_llm]) as two,
    ):
        await openai_client(one.http_port).chat.completions.create(
            model="gpt-4o", messages=user("x")
        )
        other = openai_client(two.http_port)
        with pytest.raises(openai.RateLimitError, match="tokens per minute") as info:
            await other.chat.completions.create(model="gpt-4o", messages=user("x"))
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert len(fake_openai.model_requests()) == 1
