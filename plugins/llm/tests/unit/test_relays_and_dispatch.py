"""Stream relays and the adapter's dispatch, without sockets: the usage chunk the app did not
ask for is dropped but counted; paths, bodies and model names the gateway cannot serve are
answered in the front's shape before any provider is called."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from sidecar_llm.adapter import LLMAdapter
from sidecar_llm.relays import relay_for
from sidecar_llm.translate.sse import SSEEvent

from sidecar import AdapterServices, Response, UpstreamConfig, UpstreamTimeout
from sidecar.testing import make_exchange, make_route_context


def event(data: Any, name: str | None = None) -> SSEEvent:
    return SSEEvent(name, data if isinstance(data, str) else json.dumps(data))


def test_openai_relay_counts_usage_and_drops_the_chunk_the_app_did_not_ask_for() -> None:
    """The sidecar asks for usage; without include_usage the app never sees that chunk."""
    relay = relay_for("openai", "openai", "gpt-4o", include_usage=False)
    delta = {"choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": None}
    out, content = relay.feed(event(delta))
    assert content and b'"usage"' not in out[0]
    usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}
    assert relay.feed(event(usage)) == ([], False)
    assert relay.usage is not None and (relay.usage.input_tokens, relay.usage.output_tokens) == (
        3,
        5,
    )
    out, _ = relay.feed(event("[DONE]"))
    assert relay.done and out == [b"data: [DONE]\n\n"]


def test_anthropic_relay_passes_events_and_reads_usage() -> None:
    """Anthropic events go on as sent; usage is input from message_start, output from delta."""
    relay = relay_for("anthropic", "anthropic", "claude", include_usage=False)
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}}
    out, content = relay.feed(event(start, "message_start"))
    assert out[0].startswith(b"event: message_start\n") and not content
    relay.feed(event({"type": "message_delta", "usage": {"output_tokens": 9}}, "message_delta"))
    relay.feed(event({"type": "message_stop"}, "message_stop"))
    assert relay.done and relay.usage is not None
    assert (relay.usage.input_tokens, relay.usage.output_tokens) == (7, 9)


@pytest.fixture
def handler() -> Any:
    services = AdapterServices(make_route_context().metrics, logging.getLogger("test"))
    options = {
        "providers": {"oa": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1",
                             "api_key": {"env": "PATH"}}},
        "groups": {"gpt-4o": {"deployments": [{"provider": "oa", "model": "gpt-4o"}]}},
    }  # fmt: skip
    return LLMAdapter(services).handler("llm", UpstreamConfig(adapter="llm", options=options))


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "shape"),
    [
        ("GET", "/v1/nothing", b"", 404, "openai"),
        ("POST", "/v1/messages/count_tokens", b"{}", 404, "anthropic"),
        ("POST", "/v1/chat/completions", b"{not json", 400, "openai"),
        ("POST", "/v1/chat/completions", b'{"model": "gpt-5", "messages": []}', 404, "openai"),
        ("POST", "/v1/messages", b'{"model": "claude-x", "max_tokens": 1}', 404, "anthropic"),
        ("POST", "/v1/messages", b"[1, 2]", 400, "anthropic"),
    ],
)
async def test_what_cannot_be_served_is_answered_in_the_fronts_shape(
    handler: Any, method: str, path: str, body: bytes, status: int, shape: str
) -> None:
    """Unknown paths, bodies that are not a JSON object and unknown models never reach a
    provider, and the SDK gets the error body it parses."""
    headers = {"anthropic-version": "2023-06-01"} if shape == "anthropic" else {}
    response = await handler(make_exchange(method, path, headers=headers, body=body))
    assert response.status == status
    parsed = json.loads(response.body)
    if shape == "openai":
        assert set(parsed["error"]) == {"message", "type", "param", "code"}
    else:
        assert parsed["type"] == "error" and parsed["error"]["type"]


async def test_models_are_listed_in_the_shape_of_the_sdk_that_asked(handler: Any) -> None:
    """GET /v1/models: OpenAI's list, or Anthropic's page when anthropic-version is sent."""
    openai_list = json.loads((await handler(make_exchange("GET", "/v1/models"))).body)
    assert openai_list["object"] == "list" and openai_list["data"][0]["id"] == "gpt-4o"
    exchange = make_exchange("GET", "/v1/models", headers={"anthropic-version": "2023-06-01"})
    page = json.loads((await handler(exchange)).body)
    assert page["data"][0]["type"] == "model" and page["has_more"] is False


def test_the_sidecars_breaker_and_retry_count_no_gateway_answer() -> None:
    """A 503 after every deployment failed is not a failure of the upstream for the breaker
    (one provider's outage must not shut every group); a transport error still is."""
    services = AdapterServices(make_route_context().metrics, logging.getLogger("test"))
    LLMAdapter(services)  # a second adapter on one registry (a rebuilt sidecar) is fine
    classify = LLMAdapter(services).classifier("llm", UpstreamConfig(adapter="llm"))
    assert classify(Response(503), None) == ()
    assert classify(None, UpstreamTimeout("late")) != ()


def test_an_event_that_cannot_be_converted_is_the_providers_error() -> None:
    """A provider event that is no JSON, or that the translation cannot read, is a provider
    error (failover before content, an error event after it), never a crash."""
    from sidecar_llm.streaming import _feed  # the guard the stream loop uses
    from sidecar_llm.translate.streams import ProviderStreamError

    for front, kind in (("openai", "anthropic"), ("anthropic", "openai"), ("openai", "openai")):
        with pytest.raises(ProviderStreamError):
            _feed(relay_for(front, kind, "m", False), event("{not json", "message_start"))
    with pytest.raises(ProviderStreamError):
        _feed(relay_for("openai", "anthropic", "m", False), event(["a list"], "message_start"))
