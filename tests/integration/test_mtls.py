"""The inbound mTLS listener on loopback: real handshakes, certificates made by `sidecar certs`.

A peer calls `inbound.address` with a client certificate; the sidecar verifies it against
`inbound.tls.ca`, checks the peer's SPIFFE ID against the route's allow-list and forwards the
call to the app (a FakeUpstream that records headers) with the verified identity in
`x-forwarded-client-cert`. Everything else is refused, with the reason in the sidecar's log.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from sidecar.testing import (
    FakeUpstream,
    RecordedRequest,
    SidecarProcess,
    async_wait_until,
    running_sidecar,
)
from sidecar.tls import plugin as tls_plugin

from .mtls_pki import (
    Pki,
    Records,
    Workload,
    client_context,
    file_fingerprint,
    fingerprint_of,
    request,
)

PAYMENTS = "spiffe://cluster.local/ns/pay/sa/payments"
WEB = "spiffe://cluster.local/ns/shop/sa/web"
OPS = "spiffe://cluster.local/ns/ops/sa/console"
STRANGER = "spiffe://cluster.local/ns/other/sa/batch"
XFCC = "x-forwarded-client-cert"


@dataclass
class Mesh:
    pki: Pki
    payments: Workload  # the sidecar under test serves this one
    web: Workload
    ops: Workload
    stranger: Workload

    def client(self, who: Workload | None) -> ssl.SSLContext:
        return client_context(self.pki.ca, who)


@pytest.fixture
def mesh(tmp_path: Path) -> Mesh:
    pki = Pki(tmp_path / "mesh")
    return Mesh(
        pki,
        pki.workload("payments", PAYMENTS, ip=True),
        pki.workload("web", WEB),
        pki.workload("ops", OPS),
        pki.workload("stranger", STRANGER),
    )


@pytest.fixture
def log_records() -> Iterator[Records]:
    records = Records()
    logger = logging.getLogger("sidecar")
    logger.addHandler(records)
    try:
        yield records
    finally:
        logger.removeHandler(records)


def inbound(
    mesh: Mesh, app: FakeUpstream, allow: list[str], routes: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "inbound": {
            "address": "127.0.0.1:0",
            "app": f"127.0.0.1:{app.port}",
            "tls": mesh.payments.tls(),
            "allow": allow,
            "routes": routes or [],
        }
    }


def xfcc(seen: RecordedRequest) -> list[str]:
    """Every identity header value the app received."""
    return [v for k, v in seen.raw_headers if k.lower() == XFCC]


async def get(
    port: int, ctx: ssl.SSLContext, path: str = "/", headers: Any = None
) -> httpx.Response:
    async with httpx.AsyncClient(verify=ctx, timeout=10.0) as client:
        return await client.get(f"https://127.0.0.1:{port}{path}", headers=headers)


async def test_an_allowed_peer_reaches_the_app_with_its_verified_identity(mesh: Mesh) -> None:
    """The app gets the call, path unchanged, and learns who called from one header."""
    async with FakeUpstream() as app, running_sidecar(inbound(mesh, app, [WEB])) as s:
        r = await get(s.inbound_port, mesh.client(mesh.web), "/charges?id=7")
    assert r.status_code == 200 and r.text == "ok"
    (seen,) = app.requests
    assert seen.path_qs == "/charges?id=7"
    assert xfcc(seen) == [f"By={PAYMENTS};URI={WEB}"]


async def test_an_identity_header_sent_by_the_peer_is_removed_before_the_app_sees_it(
    mesh: Mesh,
) -> None:
    """A peer cannot claim another identity: its own x-forwarded-client-cert values are dropped."""
    spoofed = [
        ("X-Forwarded-Client-Cert", f"By={PAYMENTS};URI={OPS}"),
        ("x-forwarded-client-cert", "URI=spiffe://cluster.local/ns/kube-system/sa/admin"),
    ]
    async with FakeUpstream() as app, running_sidecar(inbound(mesh, app, [WEB])) as s:
        r = await get(s.inbound_port, mesh.client(mesh.web), "/x", headers=spoofed)
    assert r.status_code == 200
    (seen,) = app.requests
    assert xfcc(seen) == [f"By={PAYMENTS};URI={WEB}"]


async def test_a_peer_not_on_the_allow_list_gets_403_and_a_log_line(
    mesh: Mesh, log_records: Records
) -> None:
    """A verified peer the allow-list does not name is refused before the app sees anything."""
    async with FakeUpstream() as app:
        cfg = inbound(mesh, app, ["spiffe://cluster.local/ns/shop/sa/*"])
        async with running_sidecar(cfg) as s:
            allowed = await get(s.inbound_port, mesh.client(mesh.web))
            refused = await get(s.inbound_port, mesh.client(mesh.stranger), "/charges")
            errors = s.metrics.registry.get_sample_value(
                "sidecar_errors_total",
                {"listener": "inbound", "upstream": "@app", "reason": "peer_not_allowed"},
            )
    assert allowed.status_code == 200  # a `*`-suffix pattern matched
    assert refused.status_code == 403
    assert refused.headers["x-sidecar-error"] == "peer_not_allowed"
    assert STRANGER in refused.text
    assert len(app.requests) == 1
    assert errors == 1
    (line,) = log_records.fields("peer not allowed")
    assert line["peer"] == STRANGER and line["route"] == "inbound"
    assert line["reason"] == "not on the route's allow-list"


async def test_each_inbound_route_has_its_own_allow_list(mesh: Mesh) -> None:
    """/admin is for the ops console only; the rest of the app for the shop."""
    routes = [{"name": "admin", "match": {"path_prefix": "/admin"}, "allow": [OPS]}]
    async with FakeUpstream() as app, running_sidecar(inbound(mesh, app, [WEB], routes)) as s:
        web_admin = await get(s.inbound_port, mesh.client(mesh.web), "/admin/users")
        web_other = await get(s.inbound_port, mesh.client(mesh.web), "/administrators")
        ops_admin = await get(s.inbound_port, mesh.client(mesh.ops), "/admin/users")
        ops_other = await get(s.inbound_port, mesh.client(mesh.ops), "/charges")
    assert (web_admin.status_code, web_other.status_code) == (403, 200)
    assert (ops_admin.status_code, ops_other.status_code) == (200, 403)
    assert "'admin'" in web_admin.text
    assert [r.path_qs for r in app.requests] == ["/administrators", "/admin/users"]


async def refused_handshake(port: int, ctx: ssl.SSLContext) -> None:
    with pytest.raises(httpx.TransportError):  # no HTTP answer at all
        await get(port, ctx)


async def assert_handshake_refused(
    mesh: Mesh, ctx: ssl.SSLContext, reason: str, detail: str, log_records: Records
) -> None:
    async with FakeUpstream() as app, running_sidecar(inbound(mesh, app, [WEB, STRANGER])) as s:
        await refused_handshake(s.inbound_port, ctx)
        await async_wait_until(lambda: bool(log_records.fields("TLS handshake refused")), 5)
        count = s.metrics.registry.get_sample_value(
            "sidecar_tls_handshake_failures_total", {"listener": "inbound", "reason": reason}
        )
    assert app.requests == []
    (line,) = log_records.fields("TLS handshake refused")
    assert line["reason"] == reason and detail in line["detail"]
    assert line["peer"].startswith("127.0.0.1:")
    assert count == 1


async def test_a_peer_without_a_client_certificate_is_refused_with_the_reason_logged(
    mesh: Mesh, log_records: Records
) -> None:
    """No client certificate, no connection: logged once with the peer address and the reason."""
    await assert_handshake_refused(
        mesh, mesh.client(None), "no_certificate", "no client certificate", log_records
    )


async def test_a_certificate_from_another_ca_is_refused(
    mesh: Mesh, tmp_path: Path, log_records: Records
) -> None:
    """A certificate with an allowed SPIFFE ID but signed by another CA proves nothing."""
    other = Pki(tmp_path / "other")
    impostor = other.workload("web", WEB)
    await assert_handshake_refused(
        mesh,
        client_context(mesh.pki.ca, impostor),
        "untrusted",
        "unable to get local issuer certificate",
        log_records,
    )


async def test_an_expired_certificate_is_refused(mesh: Mesh, log_records: Records) -> None:
    """A certificate past its validity is refused even though the CA signed it."""
    expired = mesh.pki.workload(
        "expired", WEB, valid_from=datetime.now(UTC) - timedelta(days=2), ttl=timedelta(days=1)
    )
    await assert_handshake_refused(
        mesh, mesh.client(expired), "expired", "certificate has expired", log_records
    )


async def test_plain_http_on_the_mtls_port_is_refused_and_said_so(
    mesh: Mesh, log_records: Records
) -> None:
    """A peer that forgot TLS gets no answer from the app, and the log says what happened."""
    async with FakeUpstream() as app, running_sidecar(inbound(mesh, app, [WEB])) as s:
        async with httpx.AsyncClient(timeout=10.0) as client:
            with pytest.raises(httpx.TransportError):
                await client.get(f"http://127.0.0.1:{s.inbound_port}/")
        await async_wait_until(lambda: bool(log_records.fields("TLS handshake refused")), 5)
    (line,) = log_records.fields("TLS handshake refused")
    assert line["reason"] == "plain_http"
    assert app.requests == []


async def test_refusals_are_logged_by_a_sidecar_process_with_their_reasons(
    mesh: Mesh, tmp_path: Path
) -> None:
    """`sidecar run` (uvloop) refuses and logs each bad peer; the good one gets through."""
    other = Pki(tmp_path / "other").workload("web", WEB)
    expired = mesh.pki.workload(
        "expired", WEB, valid_from=datetime.now(UTC) - timedelta(days=2), ttl=timedelta(days=1)
    )
    peers = [
        mesh.client(mesh.web),
        mesh.client(None),
        client_context(mesh.pki.ca, other),
        mesh.client(expired),
        mesh.client(mesh.stranger),
    ]
    statuses: list[int | None] = []
    async with FakeUpstream() as app:
        with SidecarProcess(_with_ephemeral_ports(inbound(mesh, app, [WEB]))) as p:
            for ctx in peers:
                try:
                    statuses.append((await get(p.inbound_port, ctx)).status_code)
                except httpx.TransportError:
                    statuses.append(None)

            def logged() -> bool:
                msgs = [x.get("msg") for x in p.log_lines()]
                return msgs.count("TLS handshake refused") >= 3 and "peer not allowed" in msgs

            await async_wait_until(logged, 10)
            lines = p.log_lines()
    assert statuses == [200, None, None, None, 403]
    refused = [x for x in lines if x.get("msg") == "TLS handshake refused"]
    assert sorted(x["reason"] for x in refused) == ["expired", "no_certificate", "untrusted"]
    assert all(x["peer"].startswith("127.0.0.1:") and x["detail"] for x in refused)
    (not_allowed,) = [x for x in lines if x.get("msg") == "peer not allowed"]
    assert not_allowed["peer"] == STRANGER


def _with_ephemeral_ports(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "admin": {"address": "127.0.0.1:0"},
        "http": {"address": "127.0.0.1:0"},
        "grpc": {"address": "127.0.0.1:0"},
        **cfg,
    }


async def test_two_sidecars_speak_mtls_and_check_each_others_spiffe_ids(mesh: Mesh) -> None:
    """web's sidecar calls payments' inbound listener: each side verifies the other's SPIFFE ID,
    and the payments app learns the call came from web."""
    async with FakeUpstream() as app, running_sidecar(inbound(mesh, app, [WEB])) as payments:
        url = f"https://127.0.0.1:{payments.inbound_port}"
        upstreams = {
            "payments": {"url": url, "tls": {**mesh.web.tls(), "spiffe_id": PAYMENTS}},
            "impostor": {
                "url": url,
                "tls": {**mesh.web.tls(), "spiffe_id": "spiffe://cluster.local/ns/pay/sa/other"},
                "retry": {"enabled": False},
            },
        }
        async with running_sidecar({"upstreams": upstreams}) as web:
            async with httpx.AsyncClient(timeout=10.0) as client:
                ok = await client.get(f"http://127.0.0.1:{web.http_port}/payments/charges")
                bad = await client.get(f"http://127.0.0.1:{web.http_port}/impostor/charges")
    assert ok.status_code == 200
    assert [xfcc(r) for r in app.requests] == [[f"By={PAYMENTS};URI={WEB}"]]
    assert bad.status_code == 502 and bad.headers["x-sidecar-error"] == "upstream_connect"
    assert PAYMENTS in bad.text and "spiffe://cluster.local/ns/pay/sa/other" in bad.text


async def test_an_allow_list_change_applies_on_reload_without_a_restart(
    mesh: Mesh, tmp_path: Path
) -> None:
    """Letting a new service in is a config reload: new calls see the new allow-list."""
    path = tmp_path / "sidecar.yaml"
    async with FakeUpstream() as app:

        def write(allow: list[str]) -> str:
            text = yaml.safe_dump(_with_ephemeral_ports(inbound(mesh, app, allow)))
            path.write_text(text)
            return text

        async with running_sidecar(write([WEB]), config_path=str(path)) as s:
            before = await get(s.inbound_port, mesh.client(mesh.ops))
            write([WEB, OPS])
            assert await s.reload()
            after = await get(s.inbound_port, mesh.client(mesh.ops))
            web_still = await get(s.inbound_port, mesh.client(mesh.web))
    assert (before.status_code, after.status_code, web_still.status_code) == (403, 200, 200)


async def test_a_certificate_close_to_expiry_is_a_metric_and_a_warning(
    mesh: Mesh, log_records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Operators see the served certificate's remaining life in /metrics and a warning in the
    log days before it runs out."""
    monkeypatch.setattr(tls_plugin, "FIRST_CHECK", 0.01)
    # a 30-day certificate 27 days into its life: 3 days left, under the 7-day warning
    # (a fresh short-lived one would not warn: only its last third of life does)
    issued = datetime.now(UTC) - timedelta(days=27)
    short = mesh.pki.workload("short", PAYMENTS, ttl=timedelta(days=30), valid_from=issued, ip=True)
    async with FakeUpstream() as app:
        cfg = inbound(mesh, app, [WEB])
        cfg["inbound"]["tls"] = short.tls()
        async with running_sidecar(cfg) as s:
            await async_wait_until(lambda: bool(log_records.fields(EXPIRES_SOON)), 5)
            left = s.metrics.registry.get_sample_value(
                "sidecar_certificate_expiry_seconds",
                {"listener": "inbound", "upstream": "", "spiffe_id": PAYMENTS},
            )
    assert left is not None and 3 * 86400 - 600 < left <= 3 * 86400
    (line,) = log_records.fields(EXPIRES_SOON)
    assert line["listener"] == "inbound" and line["spiffe_id"] == PAYMENTS
    assert 2.9 < line["days_left"] <= 3


EXPIRES_SOON = "certificate expires soon: rotate it before it does"


async def test_a_drain_finishes_inbound_calls_in_flight_and_accepts_no_new_ones(
    mesh: Mesh,
) -> None:
    """On SIGTERM a peer's call in progress still gets the app's answer; new peers are turned
    away."""
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        started.set()
        await release.wait()
        return web.Response(text="done")

    async with FakeUpstream(slow) as app, running_sidecar(inbound(mesh, app, [WEB])) as s:
        port = s.inbound_port
        call = asyncio.create_task(get(port, mesh.client(mesh.web), "/slow"))
        await asyncio.wait_for(started.wait(), 5)
        drain = asyncio.create_task(s.drain())
        await async_wait_until(lambda: s.state == "draining", 5)
        with pytest.raises(httpx.ConnectError):
            await get(port, mesh.client(mesh.web))
        release.set()
        r = await asyncio.wait_for(call, 5)
        await asyncio.wait_for(drain, 5)
    assert r.status_code == 200 and r.text == "done"


async def test_a_reload_can_move_the_certificate_files_and_a_bad_move_is_refused(
    mesh: Mesh, tmp_path: Path
) -> None:
    """New paths in `inbound.tls` take effect on reload; paths to unusable files are refused and
    the listener keeps serving the certificate it has."""
    path = tmp_path / "sidecar.yaml"
    moved = mesh.pki.workload("moved", PAYMENTS, out=tmp_path / "v2")
    async with FakeUpstream() as app:

        def write(tls: dict[str, str]) -> str:
            cfg = _with_ephemeral_ports(inbound(mesh, app, [WEB]))
            cfg["inbound"]["tls"] = tls
            text = yaml.safe_dump(cfg)
            path.write_text(text)
            return text

        async with running_sidecar(write(mesh.payments.tls()), config_path=str(path)) as s:
            write({**moved.tls(), "key": mesh.web.key})  # not the certificate's key
            assert not await s.reload()
            before = await served(s.inbound_port, mesh)
            write(moved.tls())
            assert await s.reload()
            after = await served(s.inbound_port, mesh)
    assert before == file_fingerprint(mesh.payments.cert)
    assert after == file_fingerprint(moved.cert)


async def served(port: int, mesh: Mesh) -> str:
    """The fingerprint of the certificate a new connection is served (after a 200)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=mesh.client(mesh.web))
    try:
        assert (await request(reader, writer, "/"))[0] == 200
        return fingerprint_of(writer)
    finally:
        writer.close()
