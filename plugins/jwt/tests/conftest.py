"""Session-wide keys and the JWKS server (started once; a server that cannot start fails the
tests that need it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jwt_jwks_server import JwksServer
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
