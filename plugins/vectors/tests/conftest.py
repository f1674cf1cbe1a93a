"""Fixtures for the vectors plugin's tests: the three stores, each started once a session.

``chroma_server`` is a real Chroma (``chroma run`` from the ``chromadb`` package of the test
extra) on a free port with its data in a temporary directory; it must start (a test that needs
it fails, never skips). ``fake_pinecone`` / ``fake_weaviate`` are the test servers speaking
those stores' wire formats (``vectors_fake_pinecone.py``, ``vectors_fake_weaviate.py``), each
on its own loop in a thread, emptied before every test. ``store`` is one of the three, set up
with the same namespaces (``docs`` and ``other``, dimension 3, cosine unless a test says
otherwise), for the tests that must hold whatever the backend.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vectors_fake_pinecone import PINECONE_TEST_KEY, FakePinecone
from vectors_fake_store import ServedInThread
from vectors_fake_weaviate import WEAVIATE_TEST_KEY, FakeWeaviate
from vectors_stores import KEY_ENV, ChromaServer, StoreUnderTest

#: seconds Chroma may take to answer its heartbeat (it is up in about a second here)
CHROMA_START = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chroma_executable() -> str:
    """``chroma`` of the interpreter running the tests (the test extra installs it there)."""
    beside = Path(sys.executable).with_name("chroma")
    found = str(beside) if beside.exists() else shutil.which("chroma")
    if found is None:
        pytest.fail("no `chroma` executable: install the test extra (chromadb)")
    return found


@pytest.fixture(scope="session")
def chroma_server() -> Iterator[ChromaServer]:
    """A real Chroma server for the session, stopped by its PID at the end."""
    port = free_port()
    data = tempfile.mkdtemp(prefix="chroma-test-")
    log = open(os.path.join(data, "chroma.log"), "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(  # noqa: S603 - our own venv's chroma, fixed arguments
        [chroma_executable(), "run", "--path", data, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + CHROMA_START
    try:
        while True:
            try:
                heartbeat = f"{url}/api/v2/heartbeat"
                with urllib.request.urlopen(heartbeat, timeout=1) as r:  # noqa: S310 - http
                    if r.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chroma did not start within {CHROMA_START} s (log: {log.name})")
            time.sleep(0.05)
        yield ChromaServer(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def pinecone_session() -> Iterator[FakePinecone]:
    with ServedInThread(FakePinecone()) as server:
        yield server


@pytest.fixture(scope="session")
def weaviate_session() -> Iterator[FakeWeaviate]:
    with ServedInThread(FakeWeaviate()) as server:
        yield server


@pytest.fixture
def fake_pinecone(pinecone_session: FakePinecone) -> Iterator[FakePinecone]:
    """The test Pinecone (dimension 3, cosine), empty."""
    pinecone_session.clear()
    pinecone_session.dimension, pinecone_session.metric = 3, "cosine"
    yield pinecone_session
    pinecone_session.clear()


@pytest.fixture
def fake_weaviate(weaviate_session: FakeWeaviate) -> Iterator[FakeWeaviate]:
    """The test Weaviate, with no collections."""
    weaviate_session.clear()
    yield weaviate_session
    weaviate_session.clear()


@pytest.fixture
def store_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test stores' keys in the variables the configs name."""
    monkeypatch.setenv(KEY_ENV["pinecone"], PINECONE_TEST_KEY)
    monkeypatch.setenv(KEY_ENV["weaviate"], WEAVIATE_TEST_KEY)


@pytest.fixture(params=["pinecone", "weaviate", "chroma"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest, store_keys: None) -> StoreUnderTest:
    """One backend with the namespaces ``docs`` and ``other`` (dimension 3, cosine)."""
    suffix = uuid.uuid4().hex[:8]
    server: Any = request.getfixturevalue(
        {"pinecone": "fake_pinecone", "weaviate": "fake_weaviate", "chroma": "chroma_server"}[
            backend
        ]
    )
    return StoreUnderTest.make(backend, server, suffix)
