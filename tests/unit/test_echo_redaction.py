"""The echo adapter shows injected headers by name, never the credentials the sidecar holds."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import pytest

from sidecar.adapters.echo import EchoAdapter
from sidecar.api import AdapterServices
from sidecar.auth.broker import RESOURCE, CredentialBroker
from sidecar.auth.filter import factory as auth_factory
from sidecar.chain import compose
from sidecar.exchange import Exchange
from sidecar.filters.request_headers import factory as headers_factory
from sidecar.injected import INJECTED_SECRETS, Injected, mark_injected
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import isolated_plugin_host, make_exchange, make_route_context, responder

TYPES = {r.name: r.item for r in isolated_plugin_host().registries.credentials.registrations()}
SECRET = "s3cr3t-Ech0-77aa"  # distinctive: grep-able in any output


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECHO_SECRET", SECRET)


async def echoed(upstream: dict[str, Any], exchange: Exchange | None = None) -> dict[str, Any]:
    """What the app gets from the echo adapter through the upstream's auth/request_headers."""
    ctx = make_route_context({"adapter": "echo", **upstream})
    broker = CredentialBroker(TYPES, ctx.metrics)
    ctx = dataclasses.replace(ctx, adapter=EchoAdapter.traits, resources={RESOURCE: broker})
    filters = [f for f in (auth_factory(ctx), headers_factory(ctx)) if f is not None]
    services = AdapterServices(Metrics(), logging.getLogger("test"))
    terminal = EchoAdapter(services).handler("test", ctx.upstream)
    response = await compose(filters, terminal)(exchange or make_exchange())
    assert isinstance(response.body, bytes)
    assert SECRET not in response.body.decode()
    doc: dict[str, Any] = json.loads(response.body)
    return doc


@pytest.mark.parametrize(
    ("auth", "header", "source"),
    [
        ({"type": "api_key", "key": {"env": "ECHO_SECRET"}}, "x-api-key", "auth api_key"),
        ({"type": "bearer", "token": {"env": "ECHO_SECRET"}}, "authorization", "auth bearer"),
        (
            {"type": "basic", "username": "shop", "password": {"env": "ECHO_SECRET"}},
            "authorization",
            "auth basic",
        ),
        ({"type": "hmac", "secret": {"env": "ECHO_SECRET"}}, "x-signature", "auth hmac"),
    ],
)
async def test_each_credential_is_shown_by_name_with_its_value_redacted(
    auth: dict[str, Any], header: str, source: str
) -> None:
    """The app sees that the sidecar set the header, not the credential in it."""
    doc = await echoed({"auth": auth})
    assert doc["headers"][header] == f"<redacted: {source}>"


async def test_the_hmac_timestamp_is_not_a_secret_and_stays_visible() -> None:
    """Only the signature is redacted: the timestamp it signs is shown as sent."""
    doc = await echoed({"auth": {"type": "hmac", "secret": {"env": "ECHO_SECRET"}}})
    assert doc["headers"]["x-timestamp"].isdigit()


async def test_an_api_key_in_the_query_is_redacted_there() -> None:
    """query: api_key: the parameter stays in the echoed query, its value does not."""
    auth = {"type": "api_key", "key": {"env": "ECHO_SECRET"}, "query": "api_key"}
    doc = await echoed({"auth": auth}, make_exchange(query="a=1&api_key=mine"))
    assert doc["query"] == "a=1&api_key=<redacted: auth api_key>"


async def test_secret_request_headers_are_redacted_and_literal_ones_shown() -> None:
    """A `{env: NAME}` request header is redacted; one written in the file is shown as is."""
    headers = {"x-token": {"env": "ECHO_SECRET"}, "x-sidecar-demo": "injected-by-sidecar"}
    doc = await echoed(
        {
            "request_headers": headers,
            "auth": {"type": "basic", "username": "u", "password": {"env": "ECHO_SECRET"}},
        }
    )
    assert doc["headers"]["x-token"] == "<redacted: request_headers secret>"
    assert doc["headers"]["x-sidecar-demo"] == "injected-by-sidecar"
    assert doc["headers"]["authorization"] == "<redacted: auth basic>"  # both marks kept


async def test_the_apps_own_credential_under_pass_through_is_its_own_to_see() -> None:
    """pass_through forwards what the app sent: nothing was injected, nothing is hidden."""
    auth = {"type": "bearer", "token": {"env": "ECHO_SECRET"}, "pass_through": True}
    doc = await echoed({"auth": auth}, make_exchange(headers={"authorization": "Bearer mine"}))
    assert doc["headers"]["authorization"] == "Bearer mine"


async def test_without_injected_secrets_the_echo_shows_every_header() -> None:
    """No auth, no secret: the echo is unchanged, every header as the upstream would get it."""
    doc = await echoed({}, make_exchange(headers={"authorization": "Bearer app", "x": "1"}))
    assert doc["headers"]["authorization"] == "Bearer app" and doc["headers"]["x"] == "1"


async def test_calls_to_an_adapter_that_shows_no_request_carry_no_mark() -> None:
    """Only the echo shows what it got: other upstreams' calls get the credential, unmarked."""
    upstream = {
        "url": "http://127.0.0.1:9",
        "auth": {"type": "bearer", "token": {"env": "ECHO_SECRET"}},
        "request_headers": {"x-token": {"env": "ECHO_SECRET"}},
    }
    ctx = make_route_context(upstream)
    ctx = dataclasses.replace(ctx, resources={RESOURCE: CredentialBroker(TYPES, ctx.metrics)})
    filters = [f for f in (auth_factory(ctx), headers_factory(ctx)) if f is not None]
    seen: list[Exchange] = []
    await compose(filters, responder(seen=seen))(make_exchange())
    (sent,) = seen
    assert sent.headers.get("authorization") == f"Bearer {SECRET}"
    assert sent.headers.get("x-token") == SECRET
    assert sent.peek(INJECTED_SECRETS) is None


def test_marks_of_two_filters_are_merged_on_one_call() -> None:
    """auth and request_headers each mark their names; the exchange keeps both."""
    ex = make_exchange()
    mark_injected(ex, Injected({"authorization": "auth bearer"}))
    mark_injected(ex, Injected({"x-token": "request_headers secret"}, {"k": "auth api_key"}))
    assert ex.stash[INJECTED_SECRETS] == Injected(
        {"authorization": "auth bearer", "x-token": "request_headers secret"},
        {"k": "auth api_key"},
    )
