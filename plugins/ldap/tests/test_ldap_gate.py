"""The filter and its config with no sockets: a fake directory stands in for slapd."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError
from sidecar import ConfigError, Exchange, RouteContext
from sidecar.testing import make_exchange, make_route_context, responder

import sidecar_ldap as plugin
from sidecar_ldap.basic import Credentials
from sidecar_ldap.cache import Verdict, VerdictCache
from sidecar_ldap.checker import Checker
from sidecar_ldap.config import LdapConfig
from sidecar_ldap.directory import DirectoryDown
from sidecar_ldap.gate import DirectoryUnavailable, NotInGroup, Unauthenticated, make_filter
from sidecar_ldap.hub import HUB, Hub, settings_key

ALICE = Verdict(True, "alice", "uid=alice,ou=people,dc=x", ("ops",), ("cn=ops,ou=groups,dc=x",))


class FakeDirectory:
    """Answers from a dict of (user, password) -> verdict; counts the questions."""

    def __init__(self, answers: dict[tuple[str, str], Verdict], down: bool = False) -> None:
        self.answers, self.down, self.asked = answers, down, 0
        self.gate: asyncio.Event | None = None

    async def check(self, username: str, password: str) -> Verdict:
        self.asked += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise DirectoryDown("down")
        return self.answers.get((username, password), Verdict(False))

    async def aclose(self) -> None:
        pass


class FakeHub(Hub):
    def __init__(self, directory: FakeDirectory) -> None:
        super().__init__()
        self.directory = directory

    def checker(self, config: LdapConfig, ctx: RouteContext) -> Checker:
        return Checker(self.directory, VerdictCache(60, 5, 100))


def section(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "url": "ldap://127.0.0.1:389",
        "bind_dn": "cn=sidecar,dc=x",
        "bind_password": {"env": "LDAP_TEST_PW"},
        "user": {"base": "ou=people,dc=x"},
    }
    return {**base, **changes}


@pytest.fixture(autouse=True)
def service_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LDAP_TEST_PW", "svc")


def context(directory: FakeDirectory, front: str = "inbound", **changes: Any) -> RouteContext:
    ctx = make_route_context(
        config={"plugins": {"ldap": section(**changes)}}, plugins=[plugin], front=front
    )
    return dataclasses.replace(ctx, route="inbound", resources={HUB: FakeHub(directory)})


def basic(user: str, password: str, **more: str) -> Exchange:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return make_exchange(headers={"authorization": f"Basic {token}", **more})


async def test_a_granted_call_carries_the_identity_and_not_the_password() -> None:
    """The app gets user, DN and groups; the caller's Authorization and forged headers are
    gone."""
    directory = FakeDirectory({("alice", "pw"): ALICE})
    gate = make_filter(context(directory))
    assert gate is not None
    seen: list[Exchange] = []
    response = await gate(basic("alice", "pw", **{"x-auth-groups": "admins"}), responder(seen=seen))
    assert response.status == 200
    headers = seen[0].headers
    assert headers.get("authorization") is None
    assert headers.get("x-auth-user") == "alice"
    assert headers.get("x-auth-dn") == "uid=alice,ou=people,dc=x"
    assert headers.get_all("x-auth-groups") == ["ops"]


async def test_a_wrong_password_is_a_401_with_the_realms_challenge() -> None:
    """401 ldap_unauthenticated, WWW-Authenticate naming the configured realm."""
    gate = make_filter(context(FakeDirectory({}), realm="payments"))
    assert gate is not None
    with pytest.raises(Unauthenticated) as refused:
        await gate(basic("alice", "nope"), responder())
    assert refused.value.status == 401
    assert refused.value.headers == (
        ("www-authenticate", 'Basic realm="payments", charset="UTF-8"'),
    )


async def test_an_empty_password_never_reaches_the_directory() -> None:
    """An empty password (an unauthenticated bind LDAP servers accept) is refused before any
    directory call."""
    directory = FakeDirectory({("alice", ""): ALICE})
    gate = make_filter(context(directory))
    assert gate is not None
    with pytest.raises(Unauthenticated):
        await gate(basic("alice", ""), responder())
    assert directory.asked == 0


async def test_a_directory_without_a_verdict_is_a_503_never_a_pass() -> None:
    """Fail closed: a directory that is down refuses the call with 503 ldap_unavailable."""
    gate = make_filter(context(FakeDirectory({}, down=True)))
    assert gate is not None
    with pytest.raises(DirectoryUnavailable) as refused:
        await gate(basic("alice", "pw"), responder())
    assert (refused.value.status, refused.value.code) == (503, "ldap_unavailable")


async def test_group_rules_allow_names_or_dns_and_refuse_the_rest() -> None:
    """allow_groups is any-of, by name or DN (case and spaces ignored); `*` is anyone."""
    directory = FakeDirectory({("alice", "pw"): ALICE})
    for allow, allowed in (
        (["staff", "OPS"], True),
        (["CN=ops, OU=groups, DC=x"], True),
        (["*"], True),
        (["staff"], False),
        ([], False),
    ):
        gate = make_filter(context(directory, allow_groups=allow))
        assert gate is not None
        if allowed:
            assert (await gate(basic("alice", "pw"), responder())).status == 200
        else:
            with pytest.raises(NotInGroup):
                await gate(basic("alice", "pw"), responder())


async def test_concurrent_calls_with_the_same_credentials_ask_the_directory_once() -> None:
    """Five calls at once with one password: one directory check, then the cache."""
    directory = FakeDirectory({("alice", "pw"): ALICE})
    directory.gate = asyncio.Event()
    gate = make_filter(context(directory))
    assert gate is not None
    calls = [asyncio.create_task(gate(basic("alice", "pw"), responder())) for _ in range(5)]
    await asyncio.sleep(0)  # let them all reach the checker
    directory.gate.set()
    assert [r.status for r in await asyncio.gather(*calls)] == [200] * 5
    assert directory.asked == 1
    await gate(basic("alice", "pw"), responder())
    assert directory.asked == 1


async def test_a_directory_outage_is_not_cached() -> None:
    """After the directory failed, the next call asks it again; /upstreams counts each
    outcome."""
    directory = FakeDirectory({("alice", "pw"): ALICE}, down=True)
    checker = Checker(directory, VerdictCache(60, 5, 10))
    with pytest.raises(DirectoryDown):
        await checker.verdict(Credentials("alice", "pw"))
    directory.down = False
    assert (await checker.verdict(Credentials("alice", "pw"))).granted
    assert (await checker.verdict(Credentials("alice", "pw"))).granted
    assert not (await checker.verdict(Credentials("alice", "nope"))).granted
    assert directory.asked == 3
    assert checker.describe() == {
        "cache_hits": 1,
        "granted": 1,
        "refused": 1,
        "unavailable": 1,
        "cache_entries": 2,
    }


def test_the_filter_is_off_without_a_url_and_off_other_listeners() -> None:
    """Installed without a url, or on the app's egress port, the filter costs no route
    anything."""
    off = make_route_context(config={"plugins": {"ldap": {}}}, plugins=[plugin], front="inbound")
    assert make_filter(off) is None
    assert make_filter(context(FakeDirectory({}), front="http")) is None


def test_a_rule_for_a_route_that_does_not_exist_is_refused() -> None:
    """A misspelt route name is a config problem at its key path, not a silent fallback."""
    ctx = context(FakeDirectory({}), routes={"admn": {"allow_groups": ["ops"]}})
    with pytest.raises(ConfigError) as refused:
        make_filter(ctx)
    assert "plugins.ldap.routes.admn: no inbound route has this name" in str(refused.value)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"bind_dn": None}, "bind_dn"),
        ({"bind_password": None}, "bind_password"),
        ({"bind_password": "inline-secret"}, "by reference"),
        ({"user": {"base": "dc=x", "filter": "(uid=alice)"}}, "{username}"),
        ({"user": {"base": "dc=x", "filter": "uid={username}"}}, "parentheses"),
        ({"user": {}}, "user.base is required"),
        ({"groups": {"source": "search"}}, "groups.base"),
        ({"url": "ldaps://h:636", "start_tls": True}, "start_tls"),
        ({"url": "http://h"}, "String should match"),
        ({"realm": 'a"b'}, "String should match"),
        ({"cache": {"ttl": "5s", "failure_ttl": "10s"}}, "failure_ttl"),
        ({"pool_size": 0}, "greater than or equal"),
    ],
)
def test_unusable_settings_are_refused(changes: dict[str, Any], reason: str) -> None:
    """The section is checked when the config is: each unusable setting says why, and an
    inline password is never repeated."""
    data = {k: v for k, v in section(**changes).items() if v is not None}
    with pytest.raises(ValidationError) as refused:
        LdapConfig.model_validate(data)
    messages = " ".join(str(e["msg"]) for e in refused.value.errors())
    assert reason in messages
    assert "inline-secret" not in messages


async def test_two_authorization_headers_are_refused() -> None:
    """A call with two Authorization headers is refused (401) before any directory call."""
    directory = FakeDirectory({("alice", "pw"): ALICE})
    gate = make_filter(context(directory))
    assert gate is not None
    exchange = basic("alice", "pw")
    exchange.headers.add("authorization", "Basic Ym9iOng=")
    with pytest.raises(Unauthenticated):
        await gate(exchange, responder())
    assert directory.asked == 0


def test_a_reload_that_changes_only_rules_keeps_the_pool_and_cache() -> None:
    """Routes, groups rules, realm and headers are not directory settings: the checker (its
    connections and cache) is kept; another url or cache setting makes a new one."""
    base = LdapConfig.model_validate(section())
    same = LdapConfig.model_validate(
        section(allow_groups=["ops"], realm="x", routes={"admin": {"allow_groups": ["a"]}})
    )
    other = LdapConfig.model_validate(section(url="ldap://127.0.0.1:1389"))
    cache = LdapConfig.model_validate(section(cache={"ttl": "10s"}))
    assert settings_key(base) == settings_key(same)
    assert len({settings_key(base), settings_key(other), settings_key(cache)}) == 3
