"""The plugin in a real sidecar: a peer calls the inbound mTLS listener with Basic credentials,
checked against a real slapd; the app is a recording upstream."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from inbound import Pki, basic, call, ldap_section, secret_file, sidecar_config
from sidecar.testing import FakeUpstream, running_sidecar
from slapd_server import GROUPS, PEOPLE, Slapd

import sidecar_ldap as plugin

ADMIN_ROUTE = [
    {
        "name": "admin",
        "match": {"path_prefix": "/admin"},
        "allow": ["spiffe://cluster.local/ns/shop/sa/*"],
    }
]


async def test_a_right_password_reaches_the_app_with_the_users_identity(
    slapd: Slapd, pki: Pki, tmp_path: Path
) -> None:
    """alice's call reaches the app with her name, DN and groups in headers; her password and
    any identity header she forged are not passed on."""
    forged = {"x-auth-user": "root", "x-auth-groups": "admins", **basic("alice", "alice-pw")}
    ldap = ldap_section(slapd.url, secret_file(tmp_path))
    async with FakeUpstream() as app:
        async with running_sidecar(sidecar_config(pki, app.port, ldap), plugins=[plugin]) as s:
            r = await call(s.inbound_port, pki, "/orders?id=1", forged)
            again = await call(s.inbound_port, pki, "/", basic("alice", "alice-pw"))
            async with httpx.AsyncClient() as admin:
                metrics = (await admin.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
                status = (await admin.get(f"http://127.0.0.1:{s.admin_port}/ldap")).json()
    assert (r.status_code, r.text, again.status_code) == (200, "ok", 200)
    assert 'sidecar_ldap_cache_entries{upstream="@app"} 1.0' in metrics
    assert status == {
        "enabled": True,
        "cache_hits": 1,
        "granted": 1,
        "refused": 0,
        "unavailable": 0,
        "cache_entries": 1,
    }
    seen = app.requests[0]
    assert seen.path_qs == "/orders?id=1"
    assert seen.headers["x-auth-user"] == "alice"
    assert seen.headers["x-auth-dn"] == f"uid=alice,{PEOPLE}"
    assert seen.headers["x-auth-groups"] == "ops"
    assert "authorization" not in {k.lower() for k, _ in seen.raw_headers}
    assert [v for k, v in seen.raw_headers if k.lower() == "x-auth-user"] == ["alice"]


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "no credentials"),
        (basic("alice", "wrong"), "a wrong password"),
        (basic("nobody", "alice-pw"), "an unknown user"),
        (basic("alice", ""), "an empty password (an anonymous bind the server would accept)"),
        (basic("*", "alice-pw"), "a wildcard user name"),
        (basic("*)(uid=*))(|(uid=*", "alice-pw"), "filter injection"),
        (basic("admin)(|(password=*)", "x"), "filter injection probing an attribute"),
        (basic("alice\x00", "alice-pw"), "a NUL byte in the user name"),
        (basic("uid=alice,ou=people,dc=example,dc=org", "alice-pw"), "a DN as user name"),
        ({"authorization": "Basic !!!"}, "malformed base64"),
        ({"authorization": "Bearer abc"}, "another scheme"),
    ],
)
async def test_refused_credentials_get_401_with_a_challenge(
    slapd: Slapd, pki: Pki, tmp_path: Path, headers: dict[str, str], why: str
) -> None:
    """Every bad or hostile credential gets 401 ldap_unauthenticated with a Basic challenge,
    and the app is never called."""
    ldap = ldap_section(slapd.url, secret_file(tmp_path), realm="shop")
    async with FakeUpstream() as app:
        async with running_sidecar(sidecar_config(pki, app.port, ldap), plugins=[plugin]) as s:
            r = await call(s.inbound_port, pki, "/", headers)
    assert r.status_code == 401, why
    assert r.headers["x-sidecar-error"] == "ldap_unauthenticated"
    assert r.headers["www-authenticate"] == 'Basic realm="shop", charset="UTF-8"'
    assert app.requests == []
    assert "alice-pw" not in r.text


async def test_each_route_allows_its_own_groups(
    slapd: Slapd, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """/admin is for group ops only (403 ldap_forbidden for bob, in staff), the rest of the
    app for any authenticated user; the access log names the user of each call."""
    caplog.set_level(logging.INFO, "sidecar.access")
    ldap = ldap_section(
        slapd.url, secret_file(tmp_path), routes={"admin": {"allow_groups": ["ops"]}}
    )
    cfg = sidecar_config(pki, 0, ldap, ADMIN_ROUTE)
    async with FakeUpstream() as app:
        cfg["inbound"]["app"] = f"127.0.0.1:{app.port}"
        async with running_sidecar(cfg, plugins=[plugin]) as s:
            alice = await call(s.inbound_port, pki, "/admin/users", basic("alice", "alice-pw"))
            bob = await call(s.inbound_port, pki, "/admin/users", basic("bob", "bob-pw"))
            bob_home = await call(s.inbound_port, pki, "/home", basic("bob", "bob-pw"))
    assert alice.status_code == 200
    assert (bob.status_code, bob.headers["x-sidecar-error"]) == (403, "ldap_forbidden")
    assert bob_home.status_code == 200
    assert [r.path_qs for r in app.requests] == ["/admin/users", "/home"]
    lines = [getattr(r, "fields", {}) for r in caplog.records if r.name == "sidecar.access"]
    assert [(f.get("status"), f.get("ldap_user")) for f in lines] == [
        (200, "alice"),
        (403, "bob"),
        (200, "bob"),
    ]


async def test_groups_found_by_search_include_posix_groups(
    slapd: Slapd, pki: Pki, tmp_path: Path
) -> None:
    """With groups.source search, a posixGroup's memberUid counts: alice passes a rule for
    devs, eve (in no group) gets 403."""
    groups = {"source": "search", "base": GROUPS}
    ldap = ldap_section(slapd.url, secret_file(tmp_path), groups=groups, allow_groups=["devs"])
    async with FakeUpstream() as app:
        async with running_sidecar(sidecar_config(pki, app.port, ldap), plugins=[plugin]) as s:
            alice = await call(s.inbound_port, pki, "/", basic("alice", "alice-pw"))
            eve = await call(s.inbound_port, pki, "/", basic("eve", "eve-pw"))
    assert alice.status_code == 200
    assert app.requests[0].headers["x-auth-groups"] == "ops,devs"
    assert eve.status_code == 403


async def test_a_dn_template_escapes_the_user_name(slapd: Slapd, pki: Pki, tmp_path: Path) -> None:
    """With user.dn, a name holding a comma binds as its own entry (RFC 4514 escaping), and
    the app gets it percent-encoded."""
    user = {"dn": f"uid={{username}},{PEOPLE}"}
    ldap = ldap_section(slapd.url, secret_file(tmp_path), user=user)
    async with FakeUpstream() as app:
        async with running_sidecar(sidecar_config(pki, app.port, ldap), plugins=[plugin]) as s:
            ann = await call(s.inbound_port, pki, "/", basic("ann,ops", "comma-pw"))
            other = await call(s.inbound_port, pki, "/", basic("alice,ou=people", "alice-pw"))
    assert ann.status_code == 200
    assert app.requests[0].headers["x-auth-user"] == "ann%2Cops"
    assert other.status_code == 401


def _closed_port() -> int:
    from slapd_server import free_port

    return free_port()


async def test_a_directory_that_is_down_gets_503_never_a_pass(pki: Pki, tmp_path: Path) -> None:
    """Nothing listening where the directory should be: 503 ldap_unavailable (fail closed)."""
    ldap = ldap_section(f"ldap://127.0.0.1:{_closed_port()}", secret_file(tmp_path))
    async with FakeUpstream() as app:
        async with running_sidecar(sidecar_config(pki, app.port, ldap), plugins=[plugin]) as s:
            r = await call(s.inbound_port, pki, "/", basic("alice", "alice-pw"))
    assert (r.status_code, r.headers["x-sidecar-error"]) == (503, "ldap_unavailable")
    assert app.requests == []


async def test_a_directory_that_never_answers_is_cut_at_the_timeout(
    pki: Pki, tmp_path: Path
) -> None:
    """A directory that accepts and then says nothing costs a caller at most `timeout`: 503."""
    import asyncio

    held: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # keep it open, never answer

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ldap = ldap_section(f"ldap://127.0.0.1:{port}", secret_file(tmp_path), timeout="1s")
    try:
        async with FakeUpstream() as app:
            cfg = sidecar_config(pki, app.port, ldap)
            async with running_sidecar(cfg, plugins=[plugin]) as s:
                began = time.monotonic()
                r = await call(s.inbound_port, pki, "/", basic("alice", "alice-pw"))
                took = time.monotonic() - began
    finally:
        for w in held:
            w.close()
        server.close()
    assert r.status_code == 503
    assert 0.9 <= took < 3.0


async def test_verdicts_are_cached_and_the_pool_survives_a_directory_restart(
    pki: Pki, tmp_path: Path
) -> None:
    """A granted verdict is reused while the directory is down (an uncached one gets 503), and
    once slapd is back the dead pooled connections are replaced without a failed call."""
    own = Slapd(tmp_path / "slapd").start()
    try:
        ldap = ldap_section(own.url, secret_file(tmp_path), cache={"ttl": "60s"})
        async with FakeUpstream() as app:
            cfg = sidecar_config(pki, app.port, ldap)
            async with running_sidecar(cfg, plugins=[plugin]) as s:
                first = await call(s.inbound_port, pki, "/", basic("alice", "alice-pw"))
                own.stop()
                cached = await call(s.inbound_port, pki, "/", basic("alice", "alice-pw"))
                uncached = await call(s.inbound_port, pki, "/", basic("bob", "bob-pw"))
                own.start(load=False)  # same port, same database
                back = await call(s.inbound_port, pki, "/", basic("bob", "bob-pw"))
                own.stop()  # every pooled connection is dead now, none was tried meanwhile
                own.start(load=False)
                again = await call(s.inbound_port, pki, "/", basic("eve", "eve-pw"))
    finally:
        own.stop()
    statuses = [r.status_code for r in (first, cached, uncached, back, again)]
    assert statuses == [200, 200, 503, 200, 200]


async def test_a_route_without_authentication_still_strips_forged_identity(
    slapd: Slapd, pki: Pki, tmp_path: Path
) -> None:
    """A route with authenticate: false passes without credentials, but the app never sees an
    identity header the caller made up, nor a password sent there anyway."""
    ldap = ldap_section(slapd.url, secret_file(tmp_path), routes={"admin": {"authenticate": False}})
    cfg: dict[str, Any] = sidecar_config(pki, 0, ldap, ADMIN_ROUTE)
    async with FakeUpstream() as app:
        cfg["inbound"]["app"] = f"127.0.0.1:{app.port}"
        async with running_sidecar(cfg, plugins=[plugin]) as s:
            sent = {"x-auth-user": "root", **basic("alice", "alice-pw")}
            r = await call(s.inbound_port, pki, "/admin/health", sent)
    assert r.status_code == 200
    assert "x-auth-user" not in app.requests[0].headers
    assert "authorization" not in {k.lower() for k in app.requests[0].headers}


async def test_checks_past_the_queue_bound_are_refused_at_once(pki: Pki, tmp_path: Path) -> None:
    """With every worker stuck on a mute directory and the queue full, one more check is
    refused at once (503), not queued without bound."""
    import asyncio

    from sidecar_ldap.config import LdapConfig
    from sidecar_ldap.directory import Directory, DirectoryDown

    held: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = ldap_section(f"ldap://127.0.0.1:{port}", secret_file(tmp_path), pool_size=1)
    directory = Directory(LdapConfig.model_validate(settings), lambda: "svc")
    try:
        stuck = [asyncio.create_task(directory.check(f"u{i}", "pw")) for i in range(16)]
        await asyncio.sleep(0)
        began = time.monotonic()
        with pytest.raises(DirectoryDown, match="too many checks waiting"):
            await directory.check("one-more", "pw")
        assert time.monotonic() - began < 0.5
        results = await asyncio.gather(*stuck, return_exceptions=True)
        assert all(isinstance(r, DirectoryDown) for r in results)
    finally:
        await directory.aclose()
        for w in held:
            w.close()
        server.close()


async def test_a_reload_applies_new_rules_and_keeps_the_cache(
    slapd: Slapd, pki: Pki, tmp_path: Path
) -> None:
    """Reloading with a stricter group rule takes effect at once and keeps the verdict cache
    (no directory call for a known password); a rule for a route that does not exist is
    refused and the old config stays."""
    import json

    path = tmp_path / "sidecar.yaml"
    ldap = ldap_section(slapd.url, secret_file(tmp_path))

    def write(ldap: dict[str, Any]) -> None:
        cfg = sidecar_config(pki, app.port, ldap)
        cfg.update(admin={"address": "127.0.0.1:0"}, http={"address": "127.0.0.1:0"})
        cfg["grpc"] = {"address": "127.0.0.1:0"}
        path.write_text(json.dumps(cfg))

    async with FakeUpstream() as app:
        write(ldap)
        async with running_sidecar(path.read_text(), plugins=[plugin], config_path=str(path)) as s:
            before = await call(s.inbound_port, pki, "/", basic("bob", "bob-pw"))
            write({**ldap, "allow_groups": ["ops"]})
            applied = await s.reload_result()
            after = await call(s.inbound_port, pki, "/", basic("bob", "bob-pw"))
            alice = await call(s.inbound_port, pki, "/", basic("alice", "alice-pw"))
            write({**ldap, "routes": {"nope": {}}})
            refused = await s.reload_result()
            async with httpx.AsyncClient() as admin:
                status = (await admin.get(f"http://127.0.0.1:{s.admin_port}/ldap")).json()
    assert (before.status_code, applied.applied, after.status_code) == (200, True, 403)
    assert alice.status_code == 200
    assert not refused.applied
    assert "plugins.ldap.routes.nope: no inbound route has this name" in str(refused.problems)
    assert (status["granted"], status["cache_hits"]) == (2, 1)
