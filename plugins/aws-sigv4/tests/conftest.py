"""Fixtures of the aws_sigv4 tests: the verifying upstream, started once a session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from verifier import VerifyingServer


@pytest.fixture(scope="session")
def verifier_session() -> Iterator[VerifyingServer]:
    with VerifyingServer() as served:
        yield served


@pytest.fixture
def verifier(verifier_session: VerifyingServer) -> Iterator[VerifyingServer]:
    """The session's verifying server, with nothing known and nothing received."""
    verifier_session.script.reset()
    yield verifier_session
    verifier_session.script.reset()
