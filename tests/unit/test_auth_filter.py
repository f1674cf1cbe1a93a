"""The auth filter: its place in the chain, 401 → renew → one more try, 503 when unavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sidecar.api import CredentialProvider
from sidecar.auth.filter import factory, make_auth_filter
from sidecar.errors import CredentialsUnavailable
from sidecar.exchange import Exchange, Headers, Response
from sidecar.testing import isolated_plugin_host, make_exchange, make_route_context


class Renewable(CredentialProvider):
    """A provider whose credential the upstream may refuse, and that can renew it."""

    settings_model = None  # type: ignore[assignment]

    def __init__(self, renews: bool = True) -> None:
        self.header = "authorization"
        self.token = 1
        self.renews = renews
        self.renewals = 0
        self.unavailable = False

    async def apply(self, exchange: Exchange) -> object:
        if self.unavailable:
            raise CredentialsUnavailable("no token")
        exchange.headers.set("authorization", f"Bearer t{self.token}")
        return self.token

    async def unauthorized(self, grant: object | None) -> bool:
        self.renewals += 1
        if self.renews and grant == self.token:
            self.token += 1
            return True
        return False


class Upstream:
    """Answers 401 to the tokens it was told to refuse; records what it saw."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.seen: list[str | None] = []
        self.abandoned: list[bool] = []

    async def __call__(self, exchange: Exchange) -> Response:
        token = exchange.headers.get("authorization")
        self.seen.append(token)
        status = 401 if token in self.refuse else 200
        response = Response(status, Headers(), b"")
        response.on_complete = [lambda ok, sent: self.abandoned.append(not ok)]
        return response


async def test_a_401_renews_the_token_and_sends_the_call_once_more() -> None:
    """The upstream refused the token: the app still gets 200, with one extra try."""
    provider, up = Renewable(), Upstream({"Bearer t1"})
    f = make_auth_filter(provider)
    response = await f(make_exchange("POST", "/x", body=b"payload"), up)
    assert response.status == 200
    assert up.seen == ["Bearer t1", "Bearer t2"] and up.abandoned == [True]


async def test_only_one_more_try_after_a_401() -> None:
    """An upstream refusing the renewed token too: its 401 goes back to the app (no loop)."""
    provider, up = Renewable(), Upstream({"Bearer t1", "Bearer t2"})
    response = await make_auth_filter(provider)(make_exchange(), up)
    assert response.status == 401 and up.seen == ["Bearer t1", "Bearer t2"]


async def test_no_second_try_when_the_body_was_streamed() -> None:
    """A streamed body was consumed by the first try: the 401 goes back to the app."""

    async def stream() -> AsyncIterator[bytes]:
        yield b"once"

    provider, up = Renewable(), Upstream({"Bearer t1"})
    ex = make_exchange("POST", "/x", body=stream())
    response = await make_auth_filter(provider)(ex, up)
    assert response.status == 401 and provider.renewals == 0 and len(up.seen) == 1


async def test_no_second_try_when_nothing_better_can_be_had() -> None:
    """No different credential (the IdP is down, or renewals are throttled): the 401 stands."""
    provider, up = Renewable(renews=False), Upstream({"Bearer t1"})
    response = await make_auth_filter(provider)(make_exchange(), up)
    assert response.status == 401 and len(up.seen) == 1 and up.abandoned == []


async def test_unavailable_credentials_are_counted_and_become_503() -> None:
    """No token and the IdP failing: the call never reaches the upstream; the 503 is counted."""
    provider, up = Renewable(), Upstream(set())
    provider.unavailable = True
    counted: list[int] = []
    f = make_auth_filter(provider, on_unavailable=lambda: counted.append(1))
    with pytest.raises(CredentialsUnavailable) as caught:
        await f(make_exchange(), up)
    assert caught.value.status == 503 and up.seen == [] and counted == [1]


async def test_pass_through_skips_a_renewable_provider_too() -> None:
    """The app's own Authorization is forwarded as is, and its 401 is the app's business."""
    provider, up = Renewable(), Upstream({"Bearer mine"})
    f = make_auth_filter(provider, pass_through=True)
    response = await f(make_exchange(headers={"authorization": "Bearer mine"}), up)
    assert response.status == 401 and up.seen == ["Bearer mine"] and provider.renewals == 0


def test_no_auth_means_no_filter_and_auth_without_the_broker_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Routes without auth pay nothing; auth without the credential broker says what's missing."""
    assert factory(make_route_context()) is None
    monkeypatch.setenv("T", "x")
    ctx = make_route_context(
        {"url": "http://h:1", "auth": {"type": "bearer", "token": {"env": "T"}}}
    )
    with pytest.raises(RuntimeError, match="credentials"):
        factory(ctx)


def test_auth_runs_inside_retry_and_the_breaker_and_verification_right_after_metrics() -> None:
    """Each attempt gets its own credential; unsigned calls are refused before any limit."""
    names = [r.name for r in isolated_plugin_host().registries.filters.ordered()]
    assert names.index("retry") < names.index("circuit_breaker") < names.index("auth")
    assert names.index("auth") < names.index("request_headers")
    assert names.index("metrics") < names.index("verify_hmac") < names.index("rate_limit")


def test_the_built_in_providers_are_listed_as_the_plugins_registrations() -> None:
    """`sidecar plugins` shows which credential types are available and who registered them."""
    infos = {p.name: p.registered for p in isolated_plugin_host().plugins()}
    assert infos["sidecar.auth.plugin"] == [
        "lifespan credentials",
        "credential provider api_key",
        "credential provider bearer",
        "credential provider basic",
        "credential provider oauth2_client_credentials",
        "credential provider hmac",
    ]
