"""Fixtures of the ldap plugin's tests: a private slapd and a PKI, each made once a session.

``slapd`` is :class:`slapd_server.Slapd` with the test directory loaded (it fails, never skips,
when slapd cannot start); ``pki`` is a CA and two workload certificates made with the
``sidecar certs`` command, for the inbound mTLS listener and the peer calling it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from inbound import Pki
from slapd_server import Slapd

SIDECAR = str(Path(sys.executable).with_name("sidecar"))
APP_ID = "spiffe://cluster.local/ns/shop/sa/app"
PEER_ID = "spiffe://cluster.local/ns/shop/sa/web"
#: the directory's certificate: names 127.0.0.1, from the same CA
LDAP_ID = "spiffe://cluster.local/ns/ldap/sa/slapd"


def _certs(*args: str) -> None:
    subprocess.run([SIDECAR, "certs", *args], check=True, capture_output=True, timeout=60)  # noqa: S603


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    _certs("init-ca", "--out", str(root / "ca"), "--trust-domain", "cluster.local")
    for name, spiffe_id in (("app", APP_ID), ("peer", PEER_ID)):
        _certs(
            "issue", "--ca", str(root / "ca"), "--spiffe-id", spiffe_id, "--out", str(root / name)
        )
    _certs(
        "issue", "--ca", str(root / "ca"), "--spiffe-id", LDAP_ID, "--ip", "127.0.0.1",
        "--out", str(root / "ldap"),
    )  # fmt: skip
    return Pki(str(root / "ca" / "ca.crt"), root / "app", root / "peer")


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("slapd")) as server:
        yield server


@pytest.fixture(scope="session")
def slapd_tls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A slapd that also speaks StartTLS on ``url`` and TLS on ``ldaps_url`` (a certificate
    for 127.0.0.1 from ``pki.ca``)."""
    tls = (str(pki.ldap / "tls.crt"), str(pki.ldap / "tls.key"))
    with Slapd(tmp_path_factory.mktemp("slapd-tls"), tls=tls) as server:
        yield server
