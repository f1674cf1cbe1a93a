"""Outbound mTLS: the app calls plain HTTP, the sidecar presents its client certificate and checks
the upstream's SPIFFE ID (`upstreams.X.tls.spiffe_id`) after the handshake.

The upstream is an aiohttp server serving a SPIFFE workload certificate (a URI SAN, no DNS name
or IP address) and requiring a client certificate from the same CA; it records the client
certificate of each request.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from aiohttp import web

from sidecar.testing import FakeUpstream, running_sidecar

from .mtls_pki import Pki, Workload, file_fingerprint, server_context

PAYMENTS = "spiffe://cluster.local/ns/pay/sa/payments"
WEB = "spiffe://cluster.local/ns/shop/sa/web"


class Upstream:
    """A TLS upstream that records the client certificate (its SHA-256) behind each request."""

    def __init__(self, served: Workload, *, close: bool = False) -> None:
        self.clients: list[str] = []
        self.close = close
        self.fake = FakeUpstream(self._answer, ssl_context=server_context(served))

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        der = request.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        self.clients.append(hashlib.sha256(der).hexdigest())
        resp = web.Response(text="paid")
        if self.close:
            resp.force_close()  # every call opens a new connection
        return resp

    async def __aenter__(self) -> Upstream:
        await self.fake.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.fake.stop()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "mesh")


def upstream(url: str, client: Workload, **tls: Any) -> dict[str, Any]:
    return {
        "upstreams": {
            "payments": {"url": url, "tls": {**client.tls(), **tls}, "retry": {"enabled": False}}
        }
    }


async def call(port: int) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10.0) as client:
        return await client.get(f"http://127.0.0.1:{port}/payments/charges")


@pytest.mark.parametrize("expected", [PAYMENTS, "spiffe://cluster.local/ns/pay/sa/*"])
async def test_an_upstream_with_the_expected_spiffe_id_is_called_with_our_certificate(
    pki: Pki, expected: str
) -> None:
    """The server's SPIFFE ID matches (exactly, or a `*` pattern): the call goes through, and
    the upstream saw the sidecar's client certificate."""
    web_ = pki.workload("web", WEB)
    async with Upstream(pki.workload("payments", PAYMENTS)) as up:
        async with running_sidecar(upstream(up.fake.url, web_, spiffe_id=expected)) as s:
            r = await call(s.http_port)
            left = s.metrics.registry.get_sample_value(
                "sidecar_certificate_expiry_seconds",
                {"listener": "", "upstream": "payments", "spiffe_id": WEB},
            )
    assert r.status_code == 200 and r.text == "paid"
    assert up.clients == [file_fingerprint(web_.cert)]
    assert left is not None and 23 * 3600 < left <= 24 * 3600  # the client certificate's


async def test_an_upstream_with_another_spiffe_id_is_refused_before_the_request_is_sent(
    pki: Pki,
) -> None:
    """A server with a valid certificate for another workload gets no request: 502
    `upstream_connect`, saying which ID was expected and which was seen."""
    web_ = pki.workload("web", WEB)
    other = "spiffe://cluster.local/ns/pay/sa/refunds"
    async with Upstream(pki.workload("payments", PAYMENTS)) as up:
        async with running_sidecar(upstream(up.fake.url, web_, spiffe_id=other)) as s:
            r = await call(s.http_port)
    assert r.status_code == 502
    assert r.headers["x-sidecar-error"] == "upstream_connect"
    assert f"presented the SPIFFE ID {PAYMENTS}, expected {other}" in r.text
    assert up.clients == []


async def test_an_upstream_certificate_without_a_spiffe_id_is_refused(
    pki: Pki, tmp_path: Path
) -> None:
    """A server whose certificate carries no URI SAN cannot prove a SPIFFE ID."""
    web_ = pki.workload("web", WEB)
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ca.cert_pem.write_to_path(str(tmp_path / "dns-ca.pem"))
    async with FakeUpstream(ssl_context=ctx) as up:
        cfg = upstream(up.url, web_, spiffe_id=PAYMENTS, ca=str(tmp_path / "dns-ca.pem"))
        async with running_sidecar(cfg) as s:
            r = await call(s.http_port)
    assert r.status_code == 502 and r.headers["x-sidecar-error"] == "upstream_connect"
    assert "no URI SAN" in r.text and PAYMENTS in r.text
    assert up.requests == []


async def test_without_spiffe_id_the_host_name_is_checked_which_workload_certificates_fail(
    pki: Pki,
) -> None:
    """A SPIFFE workload certificate names no host: without `spiffe_id` the usual host name check
    refuses it, which is why `spiffe_id` replaces that check."""
    web_ = pki.workload("web", WEB)
    async with Upstream(pki.workload("payments", PAYMENTS)) as up:
        async with running_sidecar(upstream(up.fake.url, web_)) as s:
            r = await call(s.http_port)
    assert r.status_code == 502 and r.headers["x-sidecar-error"] == "upstream_connect"
    assert "mismatch" in r.text  # "IP address mismatch, certificate is not valid for ..."
    assert up.clients == []


async def test_a_rotated_client_certificate_is_presented_on_new_connections(pki: Pki) -> None:
    """The sidecar's own certificate is re-issued in place: the next connections present it,
    without a restart or a reload."""
    web_ = pki.workload("web", WEB)
    first = file_fingerprint(web_.cert)
    async with Upstream(pki.workload("payments", PAYMENTS), close=True) as up:
        async with running_sidecar(upstream(up.fake.url, web_, spiffe_id=PAYMENTS)) as s:
            assert (await call(s.http_port)).status_code == 200
            pki.workload("web", WEB)  # re-issued into the same directory
            second = file_fingerprint(web_.cert)
            async with asyncio.timeout(10):  # the files are looked at once a second
                while up.clients[-1] != second:
                    assert (await call(s.http_port)).status_code == 200
                    await asyncio.sleep(0.05)
    assert up.clients[0] == first and first != second


async def test_a_refused_server_identity_is_not_retried_but_counts_for_the_breaker(
    pki: Pki,
) -> None:
    """The same peer would refuse again: with default retries a SPIFFE mismatch is one attempt,
    and the breaker (condition `tls`) still opens on it."""
    web_ = pki.workload("web", WEB)
    other = "spiffe://cluster.local/ns/pay/sa/refunds"
    async with Upstream(pki.workload("payments", PAYMENTS)) as up:
        cfg = upstream(up.fake.url, web_, spiffe_id=other)
        del cfg["upstreams"]["payments"]["retry"]  # the default policy: 3 attempts
        cfg["upstreams"]["payments"]["circuit_breaker"] = {"consecutive_failures": 2}
        async with running_sidecar(cfg) as s:
            first = await call(s.http_port)
            attempts = s.metrics.registry.get_sample_value(
                "sidecar_upstream_attempts_total",
                {"upstream": "payments", "outcome": "upstream_connect"},
            )
            await call(s.http_port)
            third = await call(s.http_port)
    assert first.headers["x-sidecar-error"] == "upstream_connect"
    assert attempts == 1
    assert third.headers["x-sidecar-error"] == "circuit_open"
    assert up.clients == []
