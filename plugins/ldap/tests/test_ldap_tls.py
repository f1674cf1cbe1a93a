"""TLS to the directory against a real slapd: ldaps and StartTLS work with the configured CA,
and a certificate for another name, or from a CA not trusted, is refused (503, never a pass)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from inbound import Pki, basic, call, ldap_section, secret_file, sidecar_config
from sidecar.testing import FakeUpstream, running_sidecar
from slapd_server import Slapd

import sidecar_ldap as plugin


def tls_cases(slapd: Slapd, pki: Pki) -> dict[str, tuple[dict[str, Any], int]]:
    """name -> (ldap settings, the status a right password gets)"""
    return {
        "ldaps": ({"url": slapd.ldaps_url, "ca": pki.ca}, 200),
        "starttls": ({"url": slapd.url, "start_tls": True, "ca": pki.ca}, 200),
        "ldaps, another name": ({"url": slapd.ldaps_url.replace("127.0.0.1", "localhost")}, 503),
        "starttls, another name": (
            {"url": slapd.url.replace("127.0.0.1", "localhost"), "start_tls": True},
            503,
        ),
        "ldaps, untrusted CA": ({"url": slapd.ldaps_url, "ca": None}, 503),
    }


@pytest.mark.parametrize(
    "case",
    ["ldaps", "starttls", "ldaps, another name", "starttls, another name", "ldaps, untrusted CA"],
)
async def test_tls_to_the_directory_is_verified(
    slapd_tls: Slapd, pki: Pki, tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The directory's certificate must come from `ca` and name the host in `url`."""
    settings, status = tls_cases(slapd_tls, pki)[case]
    settings = dict(settings)
    if "localhost" in str(settings["url"]):
        settings["ca"] = pki.ca  # trusted: only the name is wrong
    url = settings.pop("url")
    ldap = ldap_section(url, secret_file(tmp_path), **settings)
    async with FakeUpstream() as app:
        async with running_sidecar(sidecar_config(pki, app.port, ldap), plugins=[plugin]) as s:
            r = await call(s.inbound_port, pki, "/", basic("alice", "alice-pw"))
    assert r.status_code == status, case
    if status == 503:  # refused for its certificate, not for anything else
        reasons = [str(getattr(rec, "fields", {}).get("reason")) for rec in caplog.records]
        assert any("certificate" in reason.lower() for reason in reasons), reasons
