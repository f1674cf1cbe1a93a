"""Fake LLM providers for the tests: OpenAI's and Anthropic's public wire formats on 127.0.0.1.

Import from here (the modules behind it are ``fake_script``, ``fake_provider``,
``fake_openai``, ``fake_openai_chat`` and ``fake_anthropic``)::

    async with FakeOpenAI() as openai_fake:        # or ServedInThread(FakeOpenAI()) in a thread
        openai_fake.script(Fail(429, retry_after=1), Reply(text="hi"))
        ...  openai_fake.url  ...  openai_fake.requests

Each server checks its provider's key (a constructor argument, by default ``OPENAI_TEST_KEY`` /
``ANTHROPIC_TEST_KEY``), answers each model call with the next scripted step (``Reply``,
``Fail``, ``Hang``, ``StreamThenFail``, ``StreamThenError``, ``Close``; ``Reply()`` when the
script is empty: the echo of the last user message, usage counted in words) and records every
request. These are test servers, not models, and not a provider's full API.
"""

from __future__ import annotations

from fake_anthropic import ANTHROPIC_TEST_KEY, FakeAnthropic
from fake_openai import DEFAULT_OPENAI_MODELS, OPENAI_TEST_KEY, FakeOpenAI
from fake_provider import FakeProvider, ServedInThread, refused_url
from fake_script import (
    Close,
    Fail,
    Hang,
    ProviderRequest,
    Reply,
    Step,
    StreamThenError,
    StreamThenFail,
    ToolCall,
)

__all__ = [
    "ANTHROPIC_TEST_KEY",
    "DEFAULT_OPENAI_MODELS",
    "OPENAI_TEST_KEY",
    "Close",
    "Fail",
    "FakeAnthropic",
    "FakeOpenAI",
    "FakeProvider",
    "Hang",
    "ProviderRequest",
    "Reply",
    "ServedInThread",
    "Step",
    "StreamThenError",
    "StreamThenFail",
    "ToolCall",
    "refused_url",
]
