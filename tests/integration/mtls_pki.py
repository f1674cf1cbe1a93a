"""A throwaway PKI for the mTLS tests, made with the sidecar's own ``sidecar.tls.certs``.

``Pki(tmp_path / "mesh")`` is a CA for ``cluster.local``; ``pki.workload("web",
"spiffe://cluster.local/ns/shop/sa/web")`` issues a certificate into its own directory
(``tls.crt``, ``tls.key``, ``ca.crt``), and ``client_context`` / ``server_context`` build the
``ssl`` contexts a test peer uses. Helpers for raw keep-alive HTTP/1.1 over TLS are here too, for
tests that must know which connection a request went on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sidecar.tls import certs
from sidecar.tls.certinfo import read_cert_info

TRUST_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Workload:
    dir: Path
    spiffe_id: str

    @property
    def cert(self) -> str:
        return str(self.dir / "tls.crt")

    @property
    def key(self) -> str:
        return str(self.dir / "tls.key")

    @property
    def ca(self) -> str:
        return str(self.dir / "ca.crt")

    def tls(self) -> dict[str, str]:
        """As ``inbound.tls`` / ``upstreams.X.tls`` take it."""
        return {"cert": self.cert, "key": self.key, "ca": self.ca}


class Pki:
    def __init__(self, root: Path, trust_domain: str = TRUST_DOMAIN) -> None:
        self.root = root
        self.ca_dir = root / "ca"
        certs.init_ca(self.ca_dir, trust_domain=trust_domain)
        self.ca = str(self.ca_dir / "ca.crt")

    def workload(
        self,
        name: str,
        spiffe_id: str,
        *,
        ttl: timedelta = timedelta(hours=24),
        valid_from: datetime | None = None,
        ip: bool = False,
        out: Path | None = None,
    ) -> Workload:
        out = out or self.root / name
        certs.issue(
            self.ca_dir,
            spiffe_id,
            out,
            ttl=ttl,
            valid_from=valid_from,
            ip_addresses=["127.0.0.1"] if ip else [],
        )
        return Workload(out, spiffe_id)


def client_context(ca: str, workload: Workload | None = None) -> ssl.SSLContext:
    """A peer's context: trusts ``ca``, presents ``workload``'s certificate (none: no cert)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False  # workload certificates name a SPIFFE ID, not a host
    if workload is not None:
        ctx.load_cert_chain(workload.cert, workload.key)
    return ctx


def server_context(workload: Workload, *, require_client_cert: bool = True) -> ssl.SSLContext:
    """An upstream's context (for outbound tests): serves ``workload``, wants a client cert."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=workload.ca)
    ctx.load_cert_chain(workload.cert, workload.key)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def fingerprint_of(writer: asyncio.StreamWriter) -> str:
    """SHA-256 of the certificate the server presented on this connection."""
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest()


def file_fingerprint(path: str) -> str:
    return read_cert_info(path).fingerprint


async def request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    path: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One keep-alive HTTP/1.1 GET on an open connection: ``(status, headers, body)``."""
    lines = [f"GET {path} HTTP/1.1", "Host: app"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        got = {}
        for line in header_lines:
            if line:
                k, _, v = line.partition(":")
                got[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(got.get("content-length", "0")))
    return int(status_line.split()[1]), got, body


class Records(logging.Handler):
    """The sidecar's log records in this process (whatever ``propagate`` says)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def fields(self, msg: str) -> list[dict[str, Any]]:
        return [dict(getattr(r, "fields", {})) for r in self.records if r.getMessage() == msg]
