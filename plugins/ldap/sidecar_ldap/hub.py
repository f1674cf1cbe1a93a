"""The checkers of a running sidecar: one per directory settings, kept across reloads.

The ``ldap`` lifespan publishes a :class:`Hub` under :data:`HUB` in ``runtime.resources``;
each route's filter factory asks it for the :class:`~.checker.Checker` of its settings, so
every inbound route shares one connection pool and one cache, and a reload that changes only
routes, groups or headers keeps both. A reload that changes the directory settings builds a new
checker; the one from two settings ago is closed (its calls have long ended), and all are
closed when the sidecar stops.

Without a running sidecar (unit tests, ``sidecar check``) the factory builds a checker of its
own, which opens no connection until a call is checked.

Not here: the checker (:mod:`.checker`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator

from sidecar import ConfigError, ConfigProblem, RouteContext, RuntimeView, SecretValue

from .cache import VerdictCache
from .checker import Checker
from .config import LdapConfig

#: this plugin's name under ``runtime.resources``
HUB = "sidecar_ldap.hub"
#: checkers of different settings kept open at once (the live one and the one before)
KEEP = 2
#: what a checker does not depend on: changing these keeps its pool and cache
_NOT_DIRECTORY = {"routes", "allow_groups", "realm", "headers", "forward_authorization"}


def settings_key(config: LdapConfig) -> str:
    return config.model_dump_json(exclude=_NOT_DIRECTORY)


def build_checker(config: LdapConfig, config_name: str) -> Checker:
    """A new checker of ``config`` (its secret read now: an unreadable one is a config
    problem at ``plugins.ldap.bind_password``). Imports ldap3."""
    from .directory import Directory  # ldap3 only once the plugin is configured

    assert config.bind_password is not None  # the model requires it with a url
    try:
        secret = SecretValue(config.bind_password, "bind_password")
    except LookupError as e:
        where = "plugins.ldap.bind_password"
        raise ConfigError([ConfigProblem(config_name, where, str(e))]) from None
    cache = VerdictCache(config.cache.ttl, config.cache.failure_ttl, config.cache.max_entries)
    return Checker(Directory(config, secret.get), cache)


class Hub:
    """Checkers by settings (see the module docstring)."""

    def __init__(self) -> None:
        self._checkers: OrderedDict[str, Checker] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def checker(self, config: LdapConfig, ctx: RouteContext) -> Checker:
        key = settings_key(config)
        found = self._checkers.get(key)
        if found is not None:
            self._checkers.move_to_end(key)
            return found
        made = build_checker(config, ctx.config_name)
        self._checkers[key] = made
        while len(self._checkers) > KEEP:
            _, old = self._checkers.popitem(last=False)
            task = asyncio.get_running_loop().create_task(old.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return made

    async def aclose(self) -> None:
        checkers, self._checkers = list(self._checkers.values()), OrderedDict()
        for checker in checkers:
            await checker.aclose()
        for task in list(self._closing):
            with contextlib.suppress(Exception):
                await task


@contextlib.asynccontextmanager
async def hub_lifespan(runtime: RuntimeView) -> AsyncIterator[None]:
    hub = Hub()
    runtime.resources[HUB] = hub
    try:
        yield
    finally:
        runtime.resources.pop(HUB, None)
        await hub.aclose()
