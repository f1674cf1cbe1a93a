"""Certificate rotation without a restart: new handshakes use the new files, established
connections keep working on the certificate they were made with.

The in-process tests run on asyncio, with the Kubernetes Secret volume layout (``tls.crt`` →
``..data/tls.crt``, the ``..data`` link swapped by a rename); the `sidecar run` test runs on
uvloop, with the files re-issued in place by `sidecar certs issue`.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sidecar.testing import FakeUpstream, SidecarProcess, running_sidecar

from .mtls_pki import Pki, Workload, client_context, file_fingerprint, fingerprint_of, request

PAYMENTS = "spiffe://cluster.local/ns/pay/sa/payments"
WEB = "spiffe://cluster.local/ns/shop/sa/web"
FILES = ("tls.crt", "tls.key", "ca.crt")


def k8s_volume(root: Path, version: Path) -> dict[str, str]:
    """The kubelet's layout: each file links into ``..data``, which links to ``version``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "..data").symlink_to(version.name)
    for name in FILES:
        (root / name).symlink_to(f"..data/{name}")
    return {"cert": str(root / "tls.crt"), "key": str(root / "tls.key"), "ca": str(root / "ca.crt")}


def k8s_swap(root: Path, version: Path) -> None:
    """The kubelet's atomic update: ``..data`` replaced by a rename."""
    (root / "..data_tmp").symlink_to(version.name)
    os.replace(root / "..data_tmp", root / "..data")


async def connect(
    port: int, ctx: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, ssl=ctx)


async def served_to_a_new_connection(port: int, ctx: ssl.SSLContext) -> str:
    reader, writer = await connect(port, ctx)
    try:
        status, _, _ = await request(reader, writer, "/probe")
        assert status == 200
        return fingerprint_of(writer)
    finally:
        writer.close()


#: how a refused handshake shows on the client (TLS 1.3: only when the server closes)
REFUSED = (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)


async def until_served(port: int, ctx: ssl.SSLContext, fingerprint: str) -> None:
    """New connections until one is answered with ``fingerprint`` (the files are looked at once
    a second; until then the old material decides, and may refuse ``ctx``)."""
    async with asyncio.timeout(10):
        while True:
            try:
                if await served_to_a_new_connection(port, ctx) == fingerprint:
                    return
            except REFUSED:
                pass
            await asyncio.sleep(0.05)


def inbound(app: FakeUpstream, tls: dict[str, str], allow: list[str]) -> dict[str, Any]:
    return {
        "inbound": {
            "address": "127.0.0.1:0",
            "app": f"127.0.0.1:{app.port}",
            "tls": tls,
            "allow": allow,
        }
    }


async def test_a_rotated_secret_serves_new_connections_and_old_ones_keep_working(
    tmp_path: Path,
) -> None:
    """The kubelet swaps the Secret: new connections get the new certificate, a connection
    opened before keeps working on the old one, and the expiry metric follows."""
    pki = Pki(tmp_path / "mesh")
    web = pki.workload("web", WEB)
    secret = tmp_path / "secret"
    old = pki.workload("v1", PAYMENTS, out=secret / "..2026_01_01.1")
    tls = k8s_volume(secret, old.dir)
    ctx = client_context(pki.ca, web)
    async with FakeUpstream() as app, running_sidecar(inbound(app, tls, [WEB])) as s:
        port = s.inbound_port
        reader, writer = await connect(port, ctx)
        assert fingerprint_of(writer) == file_fingerprint(old.cert)
        assert (await request(reader, writer, "/before"))[0] == 200

        new = pki.workload("v2", PAYMENTS, out=secret / "..2026_01_02.1", ttl=timedelta(hours=48))
        k8s_swap(secret, new.dir)
        await until_served(port, ctx, file_fingerprint(new.cert))

        # the connection from before the rotation: still open, still on its certificate
        status, _, _ = await request(reader, writer, "/after")
        assert status == 200 and fingerprint_of(writer) == file_fingerprint(old.cert)
        writer.close()
        left = s.metrics.registry.get_sample_value(
            "sidecar_certificate_expiry_seconds",
            {"listener": "inbound", "upstream": "", "spiffe_id": PAYMENTS},
        )
    assert "/before" in [r.path_qs for r in app.requests]
    assert "/after" in [r.path_qs for r in app.requests]
    assert left is not None and left > 47 * 3600  # the new 48 h certificate


async def test_a_rotated_ca_bundle_admits_peers_of_the_new_ca_without_a_restart(
    tmp_path: Path,
) -> None:
    """CA rotation: once ca.crt holds the new CA too, its peers are accepted."""
    pki = Pki(tmp_path / "mesh")
    new_ca = Pki(tmp_path / "new-mesh")
    server = pki.workload("payments", PAYMENTS)
    newcomer = new_ca.workload("web", WEB)
    secret = tmp_path / "secret"
    v1 = secret / "..1"
    v1.mkdir(parents=True)
    for name in FILES:
        (v1 / name).write_bytes((server.dir / name).read_bytes())
    tls = k8s_volume(secret, v1)
    ctx = client_context(pki.ca, newcomer)
    async with FakeUpstream() as app, running_sidecar(inbound(app, tls, [WEB])) as s:
        with pytest.raises(REFUSED):  # not trusted yet
            await served_to_a_new_connection(s.inbound_port, ctx)
        v2 = secret / "..2"
        v2.mkdir()
        for name in ("tls.crt", "tls.key"):
            (v2 / name).write_bytes((server.dir / name).read_bytes())
        bundle = Path(pki.ca).read_bytes() + Path(new_ca.ca).read_bytes()
        (v2 / "ca.crt").write_bytes(bundle)
        k8s_swap(secret, v2)
        await until_served(s.inbound_port, ctx, file_fingerprint(server.cert))


def reissue(pki: Pki, spiffe_id: str, out: Path, ttl: str) -> None:
    """What an operator runs: `sidecar certs issue` into the directory the sidecar reads."""
    exe = Path(sys.executable).with_name("sidecar")
    subprocess.run(  # noqa: S603
        [
            str(exe),
            "certs",
            "issue",
            "--ca",
            str(pki.ca_dir),
            "--spiffe-id",
            spiffe_id,
            "--out",
            str(out),
            "--ttl",
            ttl,
        ],
        check=True,
        capture_output=True,
    )


async def test_certificates_reissued_in_place_are_served_by_a_sidecar_process(
    tmp_path: Path,
) -> None:
    """`sidecar run` (uvloop) picks up `sidecar certs issue` over its files and logs it; the
    connection opened before keeps working."""
    pki = Pki(tmp_path / "mesh")
    web = pki.workload("web", WEB)
    server: Workload = pki.workload("payments", PAYMENTS)
    ctx = client_context(pki.ca, web)
    first = file_fingerprint(server.cert)
    async with FakeUpstream() as app:
        cfg = {"admin": {"address": "127.0.0.1:0"}, "http": {"address": "127.0.0.1:0"}}
        cfg.update(inbound(app, server.tls(), [WEB]))
        with SidecarProcess(cfg) as p:
            reader, writer = await connect(p.inbound_port, ctx)
            assert fingerprint_of(writer) == first
            reissue(pki, PAYMENTS, server.dir, "48h")
            second = file_fingerprint(server.cert)
            assert second != first
            await until_served(p.inbound_port, ctx, second)
            status, _, _ = await request(reader, writer, "/still-here")
            assert status == 200 and fingerprint_of(writer) == first
            writer.close()
            reloaded = [
                x for x in p.log_lines() if x.get("msg", "").startswith("TLS certificate reloaded")
            ]
    assert reloaded and reloaded[-1]["listener"] == "inbound"
    assert reloaded[-1]["spiffe_id"] == PAYMENTS
