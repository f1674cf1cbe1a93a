"""Fixtures of the saml plugin's tests: keys, the test IdP and the inbound port, made once a
session (RSA keys and pysaml2's set-up are slow); a sidecar with the plugin on its inbound mTLS
front in front of a recording app, per test."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from idp import IDP_ID, TestIdp
from pki import GATEWAY_ID, Pki, issue
from saml2 import BINDING_HTTP_POST
from saml2.config import SPConfig
from saml2.metadata import create_metadata_string
from sidecar.testing import FakeUpstream, Sidecar, running_sidecar

import sidecar_saml

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sp_metadata(base_url: str) -> str:
    """The SP's metadata as the IdP is told it (the served one is checked by a test)."""
    config = SPConfig()
    acs = [(base_url + "/saml/acs", BINDING_HTTP_POST)]
    config.load(
        {"entityid": SP_ID, "service": {"sp": {"endpoints": {"assertion_consumer_service": acs}}}}
    )
    return str(create_metadata_string(None, config=config, valid=None).decode())


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # a missing xmlsec1 fails every test here (scripts/setup installs it), never skips
    assert shutil.which("xmlsec1"), "xmlsec1 is not installed (apt-get install xmlsec1)"
    directory = tmp_path_factory.mktemp("saml")
    pki = issue(directory)
    port = _free_port()
    idp = TestIdp(pki, SP_ID, sp_metadata(f"https://127.0.0.1:{port}"))
    os.environ[KEY_ENV] = "test-session-key-0123456789abcdefghijklmnop"
    yield World(pki, port, idp, idp.write_metadata(directory / "idp.xml"), directory)
    os.environ.pop(KEY_ENV, None)


@dataclass
class Running:
    world: World
    sidecar: Sidecar
    app: FakeUpstream


@pytest.fixture
async def running(world: World) -> AsyncIterator[Running]:
    """A sidecar with the plugin on its inbound front, in front of a recording app."""
    async with FakeUpstream() as app:
        async with running_sidecar(world.config(app), plugins=[sidecar_saml]) as sidecar:
            yield Running(world, sidecar, app)
