"""Config builders and SDK clients for the gateway's integration tests.

``gateway_config(providers=..., groups=...)`` is a whole sidecar config with one ``llm`` upstream
named ``llm``; ``openai_provider(fake)`` / ``anthropic_provider(fake)`` point a provider at a fake
server with its key by reference (``{env: ...}``, set by the ``provider_keys`` fixture). The SDK
clients never retry by themselves (``max_retries=0``): the sidecar's failover is under test.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai

#: the variables the configs name for the providers' keys (set by the provider_keys fixture)
OPENAI_KEY_ENV = "LLM_TEST_OPENAI_KEY"
ANTHROPIC_KEY_ENV = "LLM_TEST_ANTHROPIC_KEY"


def openai_provider(url: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "openai", "base_url": url, "api_key": {"env": OPENAI_KEY_ENV}, **extra}


def anthropic_provider(url: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "anthropic", "base_url": url, "api_key": {"env": ANTHROPIC_KEY_ENV}, **extra}


def group(*deployments: tuple[str, str], **extra: Any) -> dict[str, Any]:
    """A group of ``(provider, model)`` deployments."""
    return {"deployments": [{"provider": p, "model": m} for p, m in deployments], **extra}


def gateway_config(
    providers: dict[str, Any], groups: dict[str, Any], **options: Any
) -> dict[str, Any]:
    top = options.pop("top", {})
    return {
        "upstreams": {
            "llm": {
                "adapter": "llm",
                "timeout": "20s",
                "options": {"providers": providers, "groups": groups, **options},
            }
        },
        **top,
    }


def openai_client(port: int) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/llm/v1", api_key="unused", max_retries=0, timeout=20
    )


def anthropic_client(port: int) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=f"http://127.0.0.1:{port}/llm", api_key="unused", max_retries=0, timeout=20
    )


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
