"""Fixtures of the saml plugin's tests: keys, the test IdP and the inbound port, made once a
session (RSA keys and pysaml2's set-up are slow); a sidecar with the plugin on its inbound mTLS
front in front of a recording app, per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
from saml_idp import TestIdp
from saml_pki import issue
from saml_world import KEY_ENV, SP_ID, Running, World, free_port, sp_metadata
from sidecar.testing import FakeUpstream, running_sidecar

import sidecar_saml


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # a missing xmlsec1 fails every test here (scripts/setup installs it), never skips
    assert shutil.which("xmlsec1"), "xmlsec1 is not installed (apt-get install xmlsec1)"
    directory = tmp_path_factory.mktemp("saml")
    pki = issue(directory)
    port = free_port()
    idp = TestIdp(pki, SP_ID, sp_metadata(f"https://127.0.0.1:{port}"))
    os.environ[KEY_ENV] = "test-session-key-0123456789abcdefghijklmnop"
    yield World(pki, port, idp, idp.write_metadata(directory / "idp.xml"), directory)
    os.environ.pop(KEY_ENV, None)


@pytest.fixture
async def running(world: World) -> AsyncIterator[Running]:
    """A sidecar with the plugin on its inbound front, in front of a recording app."""
    async with FakeUpstream() as app:
        async with running_sidecar(world.config(app), plugins=[sidecar_saml]) as sidecar:
            yield Running(world, sidecar, app)
