"""The ``llm`` adapter's options (``upstreams.<u>.options``), validated by ``sidecar check``.

Providers (where a model is served, with its key by secret reference), model groups (the model
name an app asks for → weighted deployments on providers), fallbacks between groups, per-group
limits, the cooldown of failing deployments and a price table. Every cross reference (a
deployment's provider, a fallback's group) is checked here, so a typo is a config error with its
key path, never a failure on the first call. Not here: reading the keys (:mod:`.providers`), the
rate-limit backend a limit names (checked when the upstream is built, :mod:`.adapter`).
"""

from __future__ import annotations

__all__ = ["Cooldown", "Deployment", "Group", "Limits", "LLMOptions", "Price", "Provider"]

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from sidecar import Duration, Model, SecretRef, Size

#: a provider or group name: it becomes a metric label and a header value, so it is kept plain
NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"


def _by_reference(value: object) -> object:
    """A key is a reference; anything else is refused without repeating it (a key written inline
    would otherwise be printed by ``sidecar check`` as the value it did not expect)."""
    if isinstance(value, dict | SecretRef):
        return value
    raise ValueError(
        "a key is given by reference, {env: NAME} or {file: PATH}, never inline "
        "(the value is not repeated here)"
    )


#: a provider's key: ``{env: NAME}`` or ``{file: PATH}`` only
KeyByReference = Annotated[SecretRef, BeforeValidator(_by_reference)]


class Provider(Model):
    """``providers.<name>``: one account at one provider."""

    kind: Literal["openai", "anthropic"]
    #: OpenAI: ``https://api.openai.com/v1`` (any OpenAI-compatible server's ``/v1`` base);
    #: Anthropic: ``https://api.anthropic.com``.
    base_url: str = Field(pattern=r"^https?://[^\s@?#]+$")
    #: the provider's key, by reference (``{env: NAME}`` or ``{file: PATH}``); never inline.
    api_key: KeyByReference
    #: opening a connection to the provider.
    connect_timeout: Duration = Field(5.0, gt=0)
    #: one attempt's whole budget (for a stream: until its first content); the upstream's
    #: ``timeout`` still bounds the call with all its attempts.
    timeout: Duration = Field(60.0, gt=0)
    #: sent as ``anthropic-version`` (Anthropic only).
    anthropic_version: str = "2023-06-01"
    #: connections kept open to this provider.
    max_connections: int = Field(100, ge=1, le=10_000)


class Deployment(Model):
    """One place a group's model is served: ``{provider, model, weight}``."""

    provider: str = Field(pattern=NAME)
    #: the provider's model name sent upstream (``gpt-4o-2024-08-06``, ``claude-sonnet-4-5``).
    model: str = Field(min_length=1, max_length=256)
    #: share of this group's calls tried here first (weighted random choice).
    weight: int = Field(1, ge=1, le=1000)


class Limits(Model):
    """``groups.<g>.limits``: requests and tokens per minute, decided by a rate-limit backend."""

    #: ``ratelimit_backends.<name>`` deciding them (``local`` or ``redis`` type; Redis shares
    #: one budget between replicas).
    backend: str
    requests_per_minute: int | None = Field(None, ge=1)
    #: input plus output tokens; charged when a call's usage is known (see the README).
    tokens_per_minute: int | None = Field(None, ge=1)
    #: a header whose value splits the budget (one budget per value, e.g. ``x-team``); its
    #: value is hashed in the backend key, never stored as is.
    key_header: str | None = Field(None, pattern=r"^[a-z0-9-]+$")

    @model_validator(mode="after")
    def _something(self) -> Limits:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("give requests_per_minute, tokens_per_minute or both")
        return self


class Group(Model):
    """``groups.<model name the app asks for>``."""

    deployments: list[Deployment] = Field(min_length=1, max_length=32)
    #: groups tried, in order, once every deployment of this one failed.
    fallbacks: list[str] = Field(default_factory=list, max_length=8)
    limits: Limits | None = None


class Cooldown(Model):
    """A deployment failing ``failures`` times within ``window`` is skipped for ``duration``
    (or for the provider's ``Retry-After``, when longer)."""

    failures: int = Field(3, ge=1, le=1000)
    window: Duration = Field(60.0, gt=0)
    duration: Duration = Field(30.0, gt=0)
    #: the longest ``Retry-After`` honoured (a provider asking for an hour is capped).
    max_retry_after: Duration = Field(300.0, gt=0)


class Price(Model):
    """``prices.<provider model name>``: USD per million tokens, for the cost metric."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class LLMOptions(Model):
    """``upstreams.<u>.options`` of an upstream with ``adapter: llm``."""

    providers: dict[str, Provider] = Field(min_length=1)
    groups: dict[str, Group] = Field(min_length=1)
    #: Anthropic requires ``max_tokens``: sent when the app gave none.
    default_max_tokens: int = Field(4096, ge=1, le=1_000_000)
    cooldown: Cooldown = Cooldown()
    prices: dict[str, Price] = {}
    #: largest request body accepted from the app (413 past it).
    max_request_bytes: Size = Field(8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    #: largest non-streamed answer or single stream event read from a provider, and the most
    #: a stream may send before its first content (held in memory until then).
    max_response_bytes: Size = Field(16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)

    @field_validator("providers", "groups")
    @classmethod
    def _names(cls, v: dict[str, object]) -> dict[str, object]:
        for name in v:
            if not re.match(NAME, name):
                raise ValueError(f"{name!r} is not a plain name (letters, digits, . _ : / -)")
        return v

    @model_validator(mode="after")
    def _references(self) -> LLMOptions:
        problems: list[str] = []
        for gname, group in self.groups.items():
            for i, dep in enumerate(group.deployments):
                if dep.provider not in self.providers:
                    problems.append(
                        f"groups.{gname}.deployments[{i}].provider: no provider named "
                        f"{dep.provider!r} (providers: {', '.join(sorted(self.providers))})"
                    )
            for fb in group.fallbacks:
                if fb not in self.groups:
                    problems.append(f"groups.{gname}.fallbacks: no group named {fb!r}")
                elif fb == gname:
                    problems.append(f"groups.{gname}.fallbacks: a group cannot fall back to itself")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def fallback_order(self, group: str) -> list[str]:
        """``group`` then its fallbacks, depth first, each group once (cycles end there)."""
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            order.append(name)
            for fb in self.groups[name].fallbacks:
                visit(fb)

        visit(group)
        return order
