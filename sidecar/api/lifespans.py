"""Start-up and shutdown work plugins register: async context managers around serving."""

from __future__ import annotations

__all__ = ["LifespanFactory", "LifespanRegistry"]

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .registry import Registry

if TYPE_CHECKING:
    from .runtime import RuntimeView

log = logging.getLogger("sidecar.plugins")

#: ``factory(runtime)`` returns the async context manager entered at start-up.
LifespanFactory = Callable[["RuntimeView"], AbstractAsyncContextManager[Any]]


class _NamedLifespan(AbstractAsyncContextManager[Any]):
    """A plugin's lifespan whose failing or hanging exit is logged with its names, not raised."""

    def __init__(
        self, inner: AbstractAsyncContextManager[Any], owner: str, name: str, exit_timeout: float
    ) -> None:
        self.inner, self.owner, self.name = inner, owner, name
        #: seconds its exit may take at shutdown (the drain grace); past it, it is cut and
        #: logged, so the sidecar still stops
        self.exit_timeout = exit_timeout

    async def __aenter__(self) -> Any:
        return await self.inner.__aenter__()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            async with asyncio.timeout(self.exit_timeout):
                return await self.inner.__aexit__(et, e, tb)
        except TimeoutError:
            log.error(
                f"plugin {self.owner!r}: lifespan {self.name!r} did not exit within "
                f"{self.exit_timeout:g} s (shutdown.drain_timeout); cut",
                extra={"fields": {"plugin": self.owner, "lifespan": self.name}},
            )
            return False
        except Exception:
            # shutdown goes on: the other lifespans and the admin port still need closing
            log.exception(
                f"plugin {self.owner!r}: lifespan {self.name!r} failed at shutdown",
                extra={"fields": {"plugin": self.owner, "lifespan": self.name}},
            )
            return False


#: A lifespan's exit bound when the runtime says no drain grace (a test's fake runtime).
DEFAULT_EXIT_TIMEOUT = 10.0


def _exit_timeout(runtime: RuntimeView) -> float:
    """The drain grace (``shutdown.drain_timeout``) bounds each lifespan's exit."""
    try:
        return float(runtime.config.shutdown.drain_timeout)
    except AttributeError:
        return DEFAULT_EXIT_TIMEOUT


class LifespanRegistry(Registry[LifespanFactory]):
    """Async context managers entered at start-up, exited in reverse after draining."""

    kind = "lifespan"

    def add(self, name: str, factory: LifespanFactory) -> None:
        owner = self.owner

        def named(runtime: RuntimeView) -> AbstractAsyncContextManager[Any]:
            return _NamedLifespan(factory(runtime), owner, name, _exit_timeout(runtime))

        self._add(name, named)
