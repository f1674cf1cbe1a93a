"""sidecar-llm: an LLM gateway as a sidecar upstream (``adapter: llm``).

Apps call the sidecar with the official OpenAI or Anthropic SDK
(``base_url="http://127.0.0.1:15001/<upstream>/v1"`` or ``.../<upstream>``); the sidecar holds
the providers' keys, picks a deployment of the model group the app named, fails over within the
group and across fallback groups, translates between the OpenAI and Anthropic wire formats when
the front and the provider differ, streams, counts tokens and cost, and enforces requests and
tokens per minute through the configured rate-limit backends. Imports only ``sidecar``, the
public plugin API. Docs: ``plugins/llm/README.md`` and ``docs/llm-gateway.md``.
"""

from __future__ import annotations

from sidecar import AdapterRegistry, FilterRegistry, Phase, hookimpl

from .adapter import LLMAdapter
from .handoff import make_filter

#: The plugin API major version this plugin is written for.
SIDECAR_API = 1


@hookimpl
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add("llm", LLMAdapter)


@hookimpl
def sidecar_register_filters(registry: FilterRegistry) -> None:
    # EXTEND: after the sidecar's own admission decisions (a call refused there takes no LLM
    # budget) and outside retries and the timeout's attempts, so a call is limited once
    registry.add("llm_gateway", make_filter, phase=Phase.EXTEND)
