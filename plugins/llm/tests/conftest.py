"""Fixtures for the llm plugin's tests: the fake providers (``providers``), started once a session.

``fake_openai`` / ``fake_anthropic`` are one server each for the whole session, each on its own
event loop in a thread (so sync SDK clients, async tests and a sidecar in the test's loop can all
call it); every test gets it with an empty script, no records and no hanging calls.
``start_fake_provider(FakeOpenAI(...))`` starts another one for a single test (a second
deployment, a different key).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from providers import FakeAnthropic, FakeOpenAI, FakeProvider, ServedInThread

P = TypeVar("P", bound=FakeProvider)


@pytest.fixture(scope="session")
def fake_openai_session() -> Iterator[FakeOpenAI]:
    """The session's fake OpenAI (reset by ``fake_openai`` before each test that uses it)."""
    with ServedInThread(FakeOpenAI()) as server:
        yield server


@pytest.fixture(scope="session")
def fake_anthropic_session() -> Iterator[FakeAnthropic]:
    """The session's fake Anthropic (reset by ``fake_anthropic`` before each test that uses it)."""
    with ServedInThread(FakeAnthropic()) as server:
        yield server


@pytest.fixture
def fake_openai(fake_openai_session: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The fake OpenAI (key ``OPENAI_TEST_KEY``), with an empty script and no records."""
    fake_openai_session.reset()
    yield fake_openai_session
    fake_openai_session.reset()  # releases calls a test left hanging


@pytest.fixture
def fake_anthropic(fake_anthropic_session: FakeAnthropic) -> Iterator[FakeAnthropic]:
    """The fake Anthropic (key ``ANTHROPIC_TEST_KEY``), with an empty script and no records."""
    fake_anthropic_session.reset()
    yield fake_anthropic_session
    fake_anthropic_session.reset()


@pytest.fixture
def start_fake_provider() -> Iterator[Callable[[P], P]]:
    """``start_fake_provider(FakeOpenAI(api_key=...))``: one more server, stopped after the test."""
    with contextlib.ExitStack() as stack:

        def start(server: P) -> P:
            return stack.enter_context(ServedInThread(server))

        yield start


@pytest.fixture
def provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake providers' keys in the variables the gateway configs name (``gateway.py``)."""
    from gateway import ANTHROPIC_KEY_ENV, OPENAI_KEY_ENV
    from providers import ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY

    monkeypatch.setenv(OPENAI_KEY_ENV, OPENAI_TEST_KEY)
    monkeypatch.setenv(ANTHROPIC_KEY_ENV, ANTHROPIC_TEST_KEY)
