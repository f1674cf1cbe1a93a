"""The two fronts with the official SDKs through a real sidecar: plain, streamed, tools, both
translation directions, the model list, embeddings, unknown models and untranslatable fields."""

from __future__ import annotations

import json
from typing import Any

import anthropic
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
from providers import FakeAnthropic, FakeOpenAI, Reply, ToolCall

pytestmark = pytest.mark.usefixtures("provider_keys")

WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": WEATHER_TOOL_OPENAI["function"]["parameters"],  # type: ignore[index]
}


def both(fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic) -> dict[str, Any]:
    """``gpt-4o`` served by OpenAI, ``claude`` by Anthropic."""
    return gateway_config(
        {"oa": openai_provider(fake_openai.url), "an": anthropic_provider(fake_anthropic.url)},
        {
            "gpt-4o": group(("oa", "gpt-4o")),
            "claude": group(("an", "claude-sonnet-4-5")),
            "text-embedding-3-small": group(("oa", "text-embedding-3-small")),
        },
    )


async def test_openai_sdk_plain_and_streamed_to_openai(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """The OpenAI SDK gets the provider's answer, usage included, and headers naming it."""
    async with sidecar_factory(both(fake_openai, fake_anthropic), plugins=[sidecar_llm]) as s:
        client = openai_client(s.http_port)
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=user("hello there")
        )
        completion = raw.parse()
        assert completion.choices[0].message.content == "echo: hello there"
        assert completion.usage is not None and completion.usage.prompt_tokens == 2
        assert raw.headers["x-sidecar-llm-provider"] == "oa"
        assert raw.headers["x-sidecar-llm-attempts"] == "1"
        # the app's Authorization never reaches the provider: the sidecar's key does
        sent = fake_openai.model_requests()[0]
        assert sent.headers["authorization"] == f"Bearer {fake_openai.api_key}"

        stream = await client.chat.completions.create(
            model="gpt-4o", messages=user("stream this please"), stream=True
        )
        chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream this please"
    # usage was asked of the provider, but the app did not ask: no usage chunk reaches it
    assert fake_openai.model_requests()[1].body["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


async def test_openai_sdk_streamed_usage_when_asked(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """With include_usage the last chunk carries usage, from either provider."""
    async with sidecar_factory(both(fake_openai, fake_anthropic), plugins=[sidecar_llm]) as s:
        client = openai_client(s.http_port)
        for model in ("gpt-4o", "claude"):
            stream = await client.chat.completions.create(
                model=model,
                messages=user("count my words"),
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [c async for c in stream]
            assert chunks[-1].usage is not None, model
            assert chunks[-1].usage.prompt_tokens == 3, model


async def test_openai_sdk_to_anthropic_provider_plain_and_streamed(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """An OpenAI-shaped call is translated to Anthropic's Messages API and back."""
    async with sidecar_factory(both(fake_openai, fake_anthropic), plugins=[sidecar_llm]) as s:
        client = openai_client(s.http_port)
        completion = await client.chat.completions.create(
            model="claude",
            messages=[{"role": "system", "content": "be brief"}, *user("hi claude")],
            stop=["END"],
        )
        assert completion.choices[0].message.content == "echo: hi claude"
        assert completion.choices[0].finish_reason == "stop"
        sent = fake_anthropic.model_requests()[0]
        assert sent.body["system"] == "be brief" and sent.body["stop_sequences"] == ["END"]
        assert sent.body["max_tokens"] == 4096  # Anthropic requires it: the default
        assert sent.headers["x-api-key"] == fake_anthropic.api_key
        stream = await client.chat.completions.create(
            model="claude", messages=user("stream it"), stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: stream it"


async def test_anthropic_sdk_plain_and_streamed_both_providers(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """The Anthropic SDK works unchanged, natively and translated to an OpenAI provider."""
    async with sidecar_factory(both(fake_openai, fake_anthropic), plugins=[sidecar_llm]) as s:
        client = anthropic_client(s.http_port)
        for model in ("claude", "gpt-4o"):
            message = await client.messages.create(
                model=model, max_tokens=100, messages=user("hello anthropic")
            )
            assert message.content[0].type == "text"
            assert message.content[0].text == "echo: hello anthropic", model
            assert message.stop_reason == "end_turn" and message.usage.input_tokens == 2
            async with client.messages.stream(
                model=model, max_tokens=100, messages=user("stream to anthropic")
            ) as stream:
                final = await stream.get_final_message()
            assert final.content[0].type == "text"
            assert final.content[0].text == "echo: stream to anthropic", model
            assert final.usage.output_tokens == 4, model


async def test_tools_round_trip_openai_sdk_through_anthropic(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """A tool call comes back as OpenAI tool_calls; the tool's result goes back as tool_result."""
    fake_anthropic.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]))
    async with sidecar_factory(both(fake_openai, fake_anthropic), plugins=[sidecar_llm]) as s:
        client = openai_client(s.http_port)
        first = await client.chat.completions.create(
            model="claude", messages=user("weather in Paris?"), tools=[WEATHER_TOOL_OPENAI]
        )
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert first.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "get_weather"  # type: ignore[union-attr]
        assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
        second = await client.chat.completions.create(
            model="claude",
            tools=[WEATHER_TOOL_OPENAI],
            messages=[
                *user("weather in Paris?"),
                first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
                {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
            ],
        )
    assert second.choices[0].message.content == "echo: sunny"
    result = fake_anthropic.model_requests()[1].body["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == call.id


async def test_tools_round_trip_anthropic_sdk_through_openai(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """An OpenAI tool call reaches the Anthropic SDK as a tool_use block, streamed too."""
    fake_openai.script(Reply(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]))
    async with sidecar_factory(both(fake_openai, fake_anthropic), plugins=[sidecar_llm]) as s:
        client = anthropic_client(s.http_port)
        async with client.messages.stream(
            model="gpt-4o",
            max_tokens=100,
            tools=[WEATHER_TOOL_ANTHROPIC],  # type: ignore[list-item]
            messages=user("weather in Oslo?"),
        ) as stream:
            final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    block = final.content[-1]
    assert block.type == "tool_use" and block.input == {"city": "Oslo"}


async def test_models_list_the_groups_and_embeddings_pass(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """/v1/models lists the configured groups to both SDKs; embeddings reach OpenAI."""
    async with sidecar_factory(both(fake_openai, fake_anthropic), plugins=[sidecar_llm]) as s:
        listed = [m.id async for m in openai_client(s.http_port).models.list()]
        assert sorted(listed) == ["claude", "gpt-4o", "text-embedding-3-small"]
        page = await anthropic_client(s.http_port).models.list()
        assert [m.id for m in page.data] == listed
        emb = await openai_client(s.http_port).embeddings.create(
            model="text-embedding-3-small", input=["a b", "c"]
        )
        assert len(emb.data) == 2 and emb.usage.prompt_tokens == 3
        with pytest.raises(openai.BadRequestError, match="no embeddings"):
            await openai_client(s.http_port).embeddings.create(model="claude", input="x")


async def test_unknown_model_and_untranslatable_fields_are_refused(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, sidecar_factory: Any
) -> None:
    """An unconfigured model is 404; a field Anthropic cannot express is 400 naming it."""
    async with sidecar_factory(both(fake_openai, fake_anthropic), plugins=[sidecar_llm]) as s:
        client = openai_client(s.http_port)
        with pytest.raises(openai.NotFoundError, match="gpt-5"):
            await client.chat.completions.create(model="gpt-5", messages=user("x"))
        with pytest.raises(openai.BadRequestError, match="logprobs") as info:
            await client.chat.completions.create(model="claude", messages=user("x"), logprobs=True)
        assert info.value.body["param"] == "logprobs"  # type: ignore[index]
        with pytest.raises(anthropic.NotFoundError):
            await anthropic_client(s.http_port).messages.create(
                model="nope", max_tokens=5, messages=user("x")
            )
        with pytest.raises(anthropic.BadRequestError, match="top_k"):
            await anthropic_client(s.http_port).messages.create(
                model="gpt-4o", max_tokens=5, messages=user("x"), extra_body={"top_k": 3}
            )
    assert fake_anthropic.model_requests() == [] and fake_openai.model_requests() == []
