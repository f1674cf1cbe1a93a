"""Failover through a real sidecar with the official SDKs: a 429 storm, 529, a timeout and a
refused connection fall over (streamed or not) invisibly; a failure after content ends the stream
with an error event; a 400 is never retried; a cooled-down deployment is skipped, then back."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx
import openai
import pytest
import sidecar_llm
from gateway import (
    anthropic_client,
    anthropic_provider,
    gateway_config,
    group,
    openai_client,
    openai_provider,
    user,
)
from providers import (
    Close,
    Fail,
    FakeAnthropic,
    FakeOpenAI,
    Hang,
    StreamThenError,
    StreamThenFail,
    refused_url,
)

from sidecar.testing import async_wait_until

pytestmark = pytest.mark.usefixtures("provider_keys")


def failover_config(openai_url: str, anthropic_url: str, **options: Any) -> dict[str, Any]:
    """``gpt-4o`` on OpenAI, falling back to ``claude`` on Anthropic (a short attempt timeout)."""
    return gateway_config(
        {
            "oa": openai_provider(openai_url, timeout="1s"),
            "an": anthropic_provider(anthropic_url, timeout="1s"),
        },
        {
            "gpt-4o": group(("oa", "gpt-4o"), fallbacks=["claude"]),
            "claude": group(("an", "claude-sonnet-4-5")),
        },
        **options,
    )


@pytest.mark.parametrize(
    "failure",
    [Fail(429, retry_after=1), Fail(500), Fail(503), Close(), Hang()],
    ids=["429", "500", "503", "closed", "timeout"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_failing_provider_falls_over_to_the_fallback_group(
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    sidecar_factory: Any,
    failure: Any,
    stream: bool,
) -> None:
    """The app gets the fallback's answer, and headers saying there were 2 attempts, 1 fallback."""
    fake_openai.script(failure)
    config = failover_config(fake_openai.url, fake_anthropic.url)
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        client = openai_client(s.http_port)
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=user("fall over"), stream=stream
        )
        if stream:
            text = "".join([c.choices[0].delta.content or "" async for c in raw.parse()])
        else:
            text = raw.parse().choices[0].message.content or ""
    assert text == "echo: fall over"
    assert raw.headers["x-sidecar-llm-provider"] == "an"
    assert raw.headers["x-sidecar-llm-deployment"] == "claude-sonnet-4-5"
    assert raw.headers["x-sidecar-llm-attempts"] == "2"
    assert raw.headers["x-sidecar-llm-fallbacks"] == "1"


async def test_a_429_storm_falls_over_for_every_call_and_stops_hitting_the_limited_provider(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """Two OpenAI accounts answering 429 to everything: 12 concurrent calls all get answers
    from the fallback, and once cooled down the limited accounts are not called at all."""
    fake_openai.script(*[Fail(429, retry_after=30)] * 50)
    config = gateway_config(
        {
            "oa1": openai_provider(fake_openai.url),
            "oa2": openai_provider(fake_openai.url),
            "an": anthropic_provider(fake_anthropic.url),
        },
        {
            "gpt-4o": group(("oa1", "gpt-4o"), ("oa2", "gpt-4o"), fallbacks=["claude"]),
            "claude": group(("an", "claude-sonnet-4-5")),
        },
    )
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        client = openai_client(s.http_port)

        async def one() -> str:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=user("storm")
            )
            return raw.headers["x-sidecar-llm-provider"]

        assert await asyncio.gather(*(one() for _ in range(12))) == ["an"] * 12
        hit = len(fake_openai.model_requests())
        assert await one() == "an"
    assert 2 <= hit <= 24  # each call tried each account at most once
    assert len(fake_openai.model_requests()) == hit  # cooled down: not called again


async def test_529_and_refused_connections_fall_over_for_the_anthropic_sdk(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """Anthropic's 529 and a provider nobody listens on fall over within a group."""
    fake_anthropic.script(Fail(529))
    config = gateway_config(
        {
            "an": anthropic_provider(fake_anthropic.url),
            "dead": anthropic_provider(refused_url()),
            "oa": openai_provider(fake_openai.url),
        },
        {"claude": {"deployments": [
            {"provider": "an", "model": "claude-sonnet-4-5", "weight": 1000},
            {"provider": "dead", "model": "claude-sonnet-4-5", "weight": 1},
            {"provider": "oa", "model": "gpt-4o", "weight": 1},
        ]}},
    )  # fmt: skip
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        client = anthropic_client(s.http_port)
        async with client.messages.stream(
            model="claude", max_tokens=50, messages=user("overloaded?")
        ) as stream:
            final = await stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == "echo: overloaded?"
    # the 529 was tried first (weight), then whichever of the others came next
    assert len(fake_anthropic.model_requests()) == 1
    assert len(fake_openai.model_requests()) == 1


async def test_an_error_after_content_ends_the_stream_with_an_error_event(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """Once content reached the app there is no failover: the SDK raises mid-stream."""
    fake_openai.script(StreamThenFail(after_chunks=2))
    fake_anthropic.script(StreamThenError(after_chunks=1, status=529))
    config = failover_config(fake_openai.url, fake_anthropic.url)
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        stream = await openai_client(s.http_port).chat.completions.create(
            model="gpt-4o", messages=user("one two three four"), stream=True
        )
        got: list[str] = []
        with pytest.raises(openai.APIError, match="stream failed"):
            async for chunk in stream:
                got.append(chunk.choices[0].delta.content or "")
        assert "".join(got)  # content did reach the app before the error
        with pytest.raises(anthropic.APIStatusError, match="stream failed"):
            async with anthropic_client(s.http_port).messages.stream(
                model="claude", max_tokens=50, messages=user("one two three")
            ) as astream:
                await astream.get_final_message()
    assert len(fake_anthropic.model_requests()) == 1  # not tried again after content


async def test_a_provider_silent_after_content_is_cut_with_an_error_event(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """A stream that stalls after content ends after the provider's timeout, never hangs."""
    fake_openai.script(Hang(after_chunks=1))
    config = gateway_config(
        {"oa": openai_provider(fake_openai.url, timeout="600ms")},
        {"gpt-4o": group(("oa", "gpt-4o"))},
    )
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        stream = await openai_client(s.http_port).chat.completions.create(
            model="gpt-4o", messages=user("one two three"), stream=True
        )
        with pytest.raises(openai.APIError, match="stream failed: timeout"):
            async with asyncio.timeout(5):
                _ = [chunk async for chunk in stream]


async def test_a_client_error_is_the_apps_answer_without_failover(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """A provider's 400 comes back as the app's 400 in its shape; no other provider is asked."""
    fake_openai.script(Fail(400, message="Invalid value for 'temperature'", type_=None))
    config = failover_config(fake_openai.url, fake_anthropic.url)
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        with pytest.raises(openai.BadRequestError, match="temperature"):
            await openai_client(s.http_port).chat.completions.create(
                model="gpt-4o", messages=user("x")
            )
    assert fake_anthropic.model_requests() == []


async def test_every_deployment_failing_gives_the_last_status_and_retry_after(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """When the whole chain fails the app gets the last failure, with its Retry-After."""
    fake_openai.script(Fail(503))
    fake_anthropic.script(Fail(429, retry_after=7))
    config = failover_config(fake_openai.url, fake_anthropic.url)
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        with pytest.raises(openai.RateLimitError) as info:
            await openai_client(s.http_port).chat.completions.create(
                model="gpt-4o", messages=user("x")
            )
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.response.headers["x-sidecar-llm-attempts"] == "2"


async def test_a_failing_deployment_cools_down_and_comes_back(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """After its failures a deployment is skipped for the cooldown, then tried again."""
    fake_openai.script(Fail(500))
    config = failover_config(
        fake_openai.url,
        fake_anthropic.url,
        cooldown={"failures": 1, "window": "10s", "duration": "1s"},
    )
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        client = openai_client(s.http_port)

        async def provider_of_next_call() -> str:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=user("x")
            )
            return raw.headers["x-sidecar-llm-provider"]

        assert await provider_of_next_call() == "an"  # failed over
        skipped = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=user("x")
        )
        # oa is cooling down: not even tried, the fallback answers at the first attempt
        assert skipped.headers["x-sidecar-llm-provider"] == "an"
        assert skipped.headers["x-sidecar-llm-attempts"] == "1"
        assert skipped.headers["x-sidecar-llm-fallbacks"] == "1"
        assert len(fake_openai.model_requests()) == 1
        async with httpx.AsyncClient() as http:
            shown = (await http.get(f"http://127.0.0.1:{s.admin_port}/upstreams")).json()
        (cooling,) = shown["llm"]["cooling_down"]  # /upstreams says who is cooling down
        assert (cooling["provider"], cooling["model"]) == ("oa", "gpt-4o")
        seen: list[str] = []

        async def back() -> bool:
            seen.append(await provider_of_next_call())
            return seen[-1] == "oa"

        async with asyncio.timeout(5):
            while not await back():  # noqa: ASYNC110 - the cooldown's end has no event
                await asyncio.sleep(0.05)
    assert seen[-1] == "oa"


async def test_everything_cooling_down_is_answered_at_once_with_retry_after(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """No provider is called while every deployment cools down: 503 with Retry-After."""
    fake_openai.script(Fail(429, retry_after=30))
    fake_anthropic.script(Fail(429, retry_after=30))
    config = failover_config(fake_openai.url, fake_anthropic.url)
    async with sidecar_factory(config, plugins=[sidecar_llm]) as s:
        client = openai_client(s.http_port)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="gpt-4o", messages=user("x"))
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="gpt-4o", messages=user("x"))
    assert info.value.status_code == 503
    assert 25 <= int(info.value.response.headers["retry-after"]) <= 30
    await async_wait_until(lambda: len(fake_openai.model_requests()) == 1, 1)
    assert len(fake_anthropic.model_requests()) == 1
