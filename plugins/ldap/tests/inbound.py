"""What the integration tests share: a sidecar config with the inbound listener and the plugin,
and a peer's HTTPS call to it with a client certificate."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from slapd_server import GROUPS, PEOPLE, SERVICE_DN, SERVICE_PW


@dataclass(frozen=True)
class Pki:
    ca: str
    app: Path
    peer: Path

    @property
    def ldap(self) -> Path:
        return self.app.parent / "ldap"

    def inbound_tls(self) -> dict[str, str]:
        return {
            "cert": str(self.app / "tls.crt"),
            "key": str(self.app / "tls.key"),
            "ca": self.ca,
        }


def secret_file(tmp_path: Path) -> str:
    path = tmp_path / "ldap-password"
    path.write_text(SERVICE_PW + "\n")
    return str(path)


def ldap_section(url: str, password_file: str, **changes: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "url": url,
        "bind_dn": SERVICE_DN,
        "bind_password": {"file": password_file},
        "user": {"base": PEOPLE},
        "groups": {"source": "member_of", "base": GROUPS},
        "timeout": "2s",
        "connect_timeout": "1s",
    }
    section.update(changes)
    return section


def sidecar_config(
    pki: Pki, app_port: int, ldap: dict[str, Any], routes: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "inbound": {
            "address": "127.0.0.1:0",
            "app": f"127.0.0.1:{app_port}",
            "tls": pki.inbound_tls(),
            "allow": ["spiffe://cluster.local/ns/shop/sa/*"],
            "routes": routes or [],
        },
        "plugins": {"ldap": ldap},
    }


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def peer_context(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca)
    ctx.check_hostname = False  # workload certificates name a SPIFFE ID, not a host
    ctx.load_cert_chain(str(pki.peer / "tls.crt"), str(pki.peer / "tls.key"))
    return ctx


async def call(
    port: int, pki: Pki, path: str = "/", headers: dict[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(verify=peer_context(pki), timeout=10.0) as client:
        return await client.get(f"https://127.0.0.1:{port}{path}", headers=headers)
