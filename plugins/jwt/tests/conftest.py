"""Session-wide keys and the JWKS server (started once; a server that cannot start fails the
tests that need it)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from jwt_jwks_server import JwksServer
from jwt_pki import certs
from jwt_signer import Keys


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys("1")


@pytest.fixture(scope="session")
def next_keys() -> Keys:
    """The keys the issuer rotates to."""
    return Keys("2")


@pytest.fixture(scope="session")
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def issuer_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private CA and a certificate for 127.0.0.1 (``server/``), made by `sidecar certs`."""
    root = tmp_path_factory.mktemp("issuer")
    certs("init-ca", "--out", str(root / "ca"), "--trust-domain", "issuer.test")
    certs(
        "issue", "--ca", str(root / "ca"), "--spiffe-id", "spiffe://issuer.test/ns/idp/sa/jwks",
        "--out", str(root / "server"), "--ip", "127.0.0.1",
    )  # fmt: skip
    return root


@pytest.fixture(scope="session")
def tls_jwks_server(issuer_pki: Path) -> Iterator[JwksServer]:
    """The JWKS over HTTPS with a certificate of the private CA only."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(issuer_pki / "server" / "tls.crt", issuer_pki / "server" / "tls.key")
    server = JwksServer(tls).start()
    try:
        yield server
    finally:
        server.stop()
