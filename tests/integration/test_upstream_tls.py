"""Upstreams over TLS: a CA from config, SNI and host name checks, client certificates (mTLS).

Certificates are made per test by ``trustme`` (a throwaway CA); the upstreams are aiohttp servers
on 127.0.0.1 with real ``ssl`` contexts.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from aiohttp import web

from sidecar.testing import FakeUpstream, SidecarProcess, running_sidecar


class Upstream:
    """A TLS upstream: records the SNI name it was asked for and the client certificate seen."""

    def __init__(self, ca: trustme.CA, *names: str, require_client_cert: bool = False) -> None:
        self.sni: list[str | None] = []
        self.peer_certs: list[Any] = []
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(ctx)
        if require_client_cert:
            ca.configure_trust(ctx)
            ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.sni_callback = self._sni
        self.fake = FakeUpstream(self._answer, ssl_context=ctx)

    def _sni(self, sslobj: Any, name: str | None, ctx: Any) -> None:
        self.sni.append(name)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        self.peer_certs.append(request.transport.get_extra_info("peercert"))
        return web.Response(text="secure")

    async def __aenter__(self) -> Upstream:
        await self.fake.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.fake.stop()

    @property
    def url(self) -> str:
        return self.fake.url


@pytest.fixture
def ca(tmp_path: Path) -> trustme.CA:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return ca


def _client_cert(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    leaf = ca.issue_cert("client.test")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    return {"cert": str(tmp_path / "client.pem"), "key": str(tmp_path / "client.key")}


async def _get(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10.0) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


async def test_https_upstream_verified_with_the_configured_ca(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """`tls.ca` makes a private CA trusted: the app calls plain HTTP, the sidecar speaks TLS."""
    async with Upstream(ca, "127.0.0.1") as up:
        cfg = {"upstreams": {"up": {"url": up.url, "tls": {"ca": str(tmp_path / "ca.pem")}}}}
        async with running_sidecar(cfg) as s:
            r = await _get(s.http_port, "/up/x")
            r2 = await _get(s.http_port, "/up/y")
            assert s.describe_upstreams()["up"]["connections_opened"] == 1  # kept alive
    assert r.status_code == 200 and r.text == "secure"
    assert r2.status_code == 200
    assert up.sni == [None]  # no SNI for an IP address, as RFC 6066 says


async def test_server_name_override_is_sent_as_sni_and_checked(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """`tls.server_name` is the name sent in SNI and the one the certificate must carry."""
    async with Upstream(ca, "payments.internal") as up:
        tls = {"ca": str(tmp_path / "ca.pem"), "server_name": "payments.internal"}
        cfg = {"upstreams": {"up": {"url": up.url, "tls": tls}}}
        async with running_sidecar(cfg) as s:
            r = await _get(s.http_port, "/up/x")
    assert r.status_code == 200 and r.text == "secure"
    assert up.sni == ["payments.internal"]


async def test_certificate_for_another_name_is_502_upstream_connect_with_the_reason(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """A certificate that does not name the upstream is refused before any byte of the request
    is sent: 502 `upstream_connect`, saying the host name did not match."""
    async with Upstream(ca, "someone-else.internal") as up:
        tls = {"ca": str(tmp_path / "ca.pem"), "server_name": "payments.internal"}
        cfg = {"upstreams": {"up": {"url": up.url, "tls": tls}}}
        async with running_sidecar(cfg) as s:
            r = await _get(s.http_port, "/up/x")
    assert r.status_code == 502
    assert r.headers["x-sidecar-error"] == "upstream_connect"
    assert f"127.0.0.1:{up.fake.port}" in r.text
    assert "Hostname mismatch" in r.text and "payments.internal" in r.text
    assert up.peer_certs == []  # no request reached it


async def test_untrusted_certificate_is_502_upstream_connect(ca: trustme.CA) -> None:
    """Without `tls.ca` only the system CAs are trusted: a private CA's certificate is refused."""
    async with Upstream(ca, "127.0.0.1") as up:
        async with running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s:
            r = await _get(s.http_port, "/up/x")
    assert r.status_code == 502
    assert r.headers["x-sidecar-error"] == "upstream_connect"
    assert "certificate verify failed" in r.text


async def test_client_certificate_is_presented_when_configured(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """With `tls.cert`/`tls.key` the sidecar presents a client certificate the upstream verifies
    (mTLS); without them an upstream that requires one refuses the call."""
    async with Upstream(ca, "127.0.0.1", require_client_cert=True) as up:
        with_cert = {"ca": str(tmp_path / "ca.pem"), **_client_cert(ca, tmp_path)}
        cfg = {
            "upstreams": {
                "mtls": {"url": up.url, "tls": with_cert},
                "plain": {"url": up.url, "tls": {"ca": str(tmp_path / "ca.pem")}},
            }
        }
        async with running_sidecar(cfg) as s:
            r = await _get(s.http_port, "/mtls/x")
            refused = await _get(s.http_port, "/plain/x")
    assert r.status_code == 200 and r.text == "secure"
    assert len(up.peer_certs) == 1
    assert ("DNS", "client.test") in up.peer_certs[0]["subjectAltName"]
    assert refused.status_code == 502
    # TLS 1.3 refuses a client certificate after the client finished its handshake: an alert
    # (upstream_connect) or, when the server's close outruns it, a bare reset (upstream_reset)
    assert refused.headers["x-sidecar-error"] in ("upstream_connect", "upstream_reset")
    assert "TLS" in refused.text


async def test_tls_upstreams_under_uvloop_in_a_sidecar_process(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """`sidecar run` (uvloop) verifies, sends client certificates and reports TLS failures the
    same way."""
    async with (
        Upstream(ca, "payments.internal", require_client_cert=True) as good,
        Upstream(ca, "someone-else.internal") as wrong,
    ):
        tls = {"ca": str(tmp_path / "ca.pem"), "server_name": "payments.internal"}
        cfg = {
            # the stop below only ends the process: no 2 s wait for the app to go quiet first
            "shutdown": {"app_quiet_period": "0s"},
            "upstreams": {
                "good": {"url": good.url, "tls": {**tls, **_client_cert(ca, tmp_path)}},
                "wrong": {"url": wrong.url, "tls": tls},
            },
        }
        proc = await asyncio.to_thread(SidecarProcess(cfg).start)
        try:
            ok = await _get(proc.http_port, "/good/x")
            bad = await _get(proc.http_port, "/wrong/x")
        finally:
            await asyncio.to_thread(proc.terminate)
    assert ok.status_code == 200 and ok.text == "secure"
    assert good.sni == ["payments.internal"] and len(good.peer_certs) == 1
    assert bad.status_code == 502 and bad.headers["x-sidecar-error"] == "upstream_connect"
    assert "Hostname mismatch" in bad.text
