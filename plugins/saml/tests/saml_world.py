"""What the saml plugin's tests share: the test world (keys, the test IdP, the inbound port) and a
running sidecar with the plugin, as the fixtures of conftest.py make them."""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saml2 import BINDING_HTTP_POST
from saml2.config import SPConfig
from saml2.metadata import create_metadata_string
from saml_idp import IDP_ID, TestIdp
from saml_pki import GATEWAY_ID, Pki
from sidecar.testing import FakeUpstream, Sidecar

SP_ID = "https://app.test/sp"
KEY_ENV = "SAML_TEST_SESSION_KEY"


@dataclass(frozen=True)
class World:
    """What every test shares: keys, where things are, the IdP."""

    pki: Pki
    port: int
    idp: TestIdp
    idp_metadata: Path
    dir: Path

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def section(self, **changes: Any) -> dict[str, Any]:
        """The ``plugins.saml`` section the tests use, with ``changes``."""
        section: dict[str, Any] = {
            "idp": {"entity_id": IDP_ID, "metadata_file": str(self.idp_metadata)},
            "entity_id": SP_ID,
            "base_url": self.base_url,
            "session": {"key": {"env": KEY_ENV}, "lifetime": "1h"},
            "attributes": {"mail": "x-user-email", "eduPersonAffiliation": "x-user-groups"},
            "public_paths": ["/healthz"],
        }
        section.update(changes)
        return section

    def config(self, app: FakeUpstream, **changes: Any) -> dict[str, Any]:
        """A whole sidecar config: inbound mTLS in front of ``app``, the plugin on it."""
        return {
            "upstreams": {},
            "inbound": {
                "address": f"127.0.0.1:{self.port}",
                "app": app.url.removeprefix("http://"),
                "tls": {
                    "cert": str(self.pki.server_cert),
                    "key": str(self.pki.server_key),
                    "ca": str(self.pki.ca),
                },
                "allow": [GATEWAY_ID],
            },
            "plugins": {"saml": self.section(**changes)},
        }


def free_port() -> int:
    """A free port below the kernel's ephemeral range. Every test starts a sidecar on this one
    port (the IdP knows it), so a port from that range could be handed to some client socket
    between two tests and the next sidecar would fail to bind it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(max(1024, low - 10000), low), 100):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port below {low}")


def sp_metadata(base_url: str) -> str:
    """The SP's metadata as the IdP is told it (the served one is checked by a test)."""
    config = SPConfig()
    acs = [(base_url + "/saml/acs", BINDING_HTTP_POST)]
    config.load(
        {"entityid": SP_ID, "service": {"sp": {"endpoints": {"assertion_consumer_service": acs}}}}
    )
    return str(create_metadata_string(None, config=config, valid=None).decode())


@dataclass
class Running:
    world: World
    sidecar: Sidecar
    app: FakeUpstream
