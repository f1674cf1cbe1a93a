"""What ``sidecar check`` runs besides the loader: start-up's own checks, offline.

Some problems only show when routes are composed: a secret read where it goes (an ``api_key`` or
``bearer`` token holding CR/LF would split the request head), an OAuth2 CA bundle, a gRPC
channel's TLS files, ``services`` on a non-gRPC upstream, the inbound certificates, the tracing
settings read from the environment. The sidecar's preflight runs the very code its start-up
runs for them (plugin sections, adapters, every route's chain), so ``check`` refuses what
``run`` refuses, with the same ``file: key.path: reason``.

This module gives that composition the resources the built-in lifespans publish, built the same
way but without I/O: the credential broker (no token is fetched: providers fetch on first use),
the rate-limit backends unopened (no connection to Redis), and the tracing settings resolved (the
exporter is not built). Nothing here listens, connects or starts a task.

Not here: the listeners, the admin and metrics ports, any lifespan of a third-party plugin
(``ctx.resources`` holds only what this module builds, so a factory needing such a resource
sees it absent).
"""

from __future__ import annotations

__all__ = ["offline_resources"]

import os
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from .auth.broker import RESOURCE as CREDENTIALS
from .auth.broker import CredentialBroker
from .ratelimit.live import RESOURCE as RATELIMIT_BACKENDS
from .ratelimit.live import LiveBackends
from .telemetry.tracing_settings import resolve

if TYPE_CHECKING:
    from .api import RuntimeView


def offline_resources(sidecar: RuntimeView, stack: AsyncExitStack) -> dict[str, Any]:
    """The built-in lifespans' resources for ``sidecar``'s composition, closed by ``stack``
    (what it reads: the registries, the config and its name, the metrics).

    Raises :class:`~sidecar.errors.ConfigError` for tracing settings the tracing lifespan would
    refuse at start-up.
    """
    registries = sidecar.registries
    # only what a loaded lifespan would publish (a disabled built-in plugin publishes nothing)
    lifespans = {r.name for r in registries.lifespans.registrations()}
    if "tracing" in lifespans:
        # the same call the tracing lifespan makes first (config and OTEL_* variables)
        resolve(sidecar.config.telemetry.tracing, os.environ, sidecar.config_name)
    resources: dict[str, Any] = {}
    if "credentials" in lifespans:
        types = {r.name: r.item for r in registries.credentials.registrations()}
        broker = CredentialBroker(types, sidecar.metrics)
        stack.push_async_callback(broker.aclose)
        resources[CREDENTIALS] = broker
    if "ratelimit_backends" in lifespans:
        # unopened: backends are built as routes name them, and connect only on their first call
        live = LiveBackends(registries.ratelimit_backends, sidecar.metrics)
        stack.push_async_callback(live.aclose)
        resources[RATELIMIT_BACKENDS] = live
    return resources
