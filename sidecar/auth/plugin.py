"""The built-in credentials plugin: the five provider types, and the lifespan that opens the
credential broker when a sidecar starts and closes it (its token refreshers and HTTP client)
after the sidecar drained.

Registered like any plugin (``BUILTIN_PLUGINS``), through the same hooks a third party uses to
add a provider of its own (docs/plugins.md). The ``auth`` and ``verify_hmac`` filters are
built-in filters, registered with the others by :mod:`sidecar.filters`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ..api import CredentialRegistry, LifespanRegistry, hookimpl
from .api_key import ApiKey
from .basic import Basic
from .bearer import Bearer
from .broker import RESOURCE, CredentialBroker
from .hmac import HmacSigner
from .oauth2 import OAuth2ClientCredentials

if TYPE_CHECKING:
    from ..api import RuntimeView


@hookimpl(trylast=True)
def sidecar_register_credentials(registry: CredentialRegistry) -> None:
    registry.add("api_key", ApiKey)
    registry.add("bearer", Bearer)
    registry.add("basic", Basic)
    registry.add("oauth2_client_credentials", OAuth2ClientCredentials)
    registry.add("hmac", HmacSigner)


@asynccontextmanager
async def credentials(sidecar: RuntimeView) -> AsyncIterator[CredentialBroker]:
    types = {r.name: r.item for r in sidecar.registries.credentials.registrations()}
    broker = CredentialBroker(types, sidecar.metrics)
    sidecar.resources[RESOURCE] = broker
    try:
        yield broker
    finally:
        await broker.aclose()
        sidecar.resources.pop(RESOURCE, None)


@hookimpl(trylast=True)
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    registry.add("credentials", credentials)
