"""A front as the sidecar drives it: every call into it guarded, so a plugin's front can break
itself but never start-up's message, a reload's consistency or the shutdown.

- building, composing, swapping and starting raise :class:`~sidecar.errors.PluginError` naming
  the plugin and the front (``OSError`` from ``start`` names the address and keeps its reason);
- ``stop_accepting``, ``hold_for_app`` and ``app_activity`` never raise: a failure is logged with
  the plugin's name and the shutdown goes on;
- ``drain`` is bounded: past the grace plus :data:`DRAIN_OVERRUN` it is cut and logged, so one
  hanging front cannot keep the process from stopping.

Not here: what a front is (:mod:`sidecar.api.fronts`) or when each call happens (the sidecar).
"""

from __future__ import annotations

__all__ = ["DRAIN_OVERRUN", "GuardedFront", "guard"]

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .api.fronts import AppActivity, Front
from .errors import ConfigError, PluginError

if TYPE_CHECKING:
    from .api import FrontTraits, RouteBuilder
    from .config.models import UpstreamConfig

log = logging.getLogger("sidecar")

#: Seconds a front's drain may run past the grace before it is cut (the built-in fronts give
#: cut calls 1 s to unwind after the grace).
DRAIN_OVERRUN = 2.0
#: What the sidecar calls on a front.
_MEMBERS = (
    "traits",
    "faces",
    "compose",
    "swap",
    "upstreams",
    "start",
    "port",
    "address",
    "hold_for_app",
    "stop_accepting",
    "drain",
    "app_activity",
)


def guard(front: object, name: str, owner: str) -> GuardedFront:
    """``front`` (what a front factory returned) checked for the protocol and guarded."""
    missing = [m for m in _MEMBERS if not hasattr(type(front), m) and not hasattr(front, m)]
    if missing:
        raise PluginError(
            f"plugin {owner!r}: front {name!r} is a {type(front).__name__} without "
            f"{', '.join(missing)} (see sidecar.Front)"
        )
    faces = getattr(front, "faces", None)
    if faces not in ("app", "peers"):
        raise PluginError(f"plugin {owner!r}: front {name!r}: faces is {faces!r}, not app/peers")
    return GuardedFront(front, name, owner)


class GuardedFront:
    """One front and who registered it (see the module docstring)."""

    def __init__(self, inner: Any, name: str, owner: str) -> None:
        self.inner: Front[Any] = inner
        self.name, self.owner = name, owner
        self.traits: FrontTraits = inner.traits
        self.faces = inner.faces

    def _failed(self, what: str, e: BaseException) -> PluginError:
        return PluginError(
            f"plugin {self.owner!r}: front {self.name!r} failed to {what}: {type(e).__name__}: {e}"
        )

    def _log(self, what: str) -> None:
        log.exception(
            f"plugin {self.owner!r}: front {self.name!r} failed to {what}",
            extra={"fields": {"plugin": self.owner, "front": self.name}},
        )

    def compose(self, builder: RouteBuilder) -> Any:
        try:
            return self.inner.compose(builder)
        except (ConfigError, PluginError):
            raise
        except Exception as e:
            raise self._failed("compose its routes", e) from e

    def swap(self, routes: Any) -> None:
        try:
            self.inner.swap(routes)
        except Exception as e:
            raise self._failed("take its new routes", e) from e

    def upstreams(self, routes: Any) -> Mapping[str, UpstreamConfig]:
        try:
            return dict(self.inner.upstreams(routes))
        except Exception as e:
            raise self._failed("say which upstreams it uses", e) from e

    async def start(self, address: str) -> None:
        """Listen; ``address`` names it in the error when it cannot."""
        try:
            await self.inner.start()
        except OSError as e:
            reason = e.strerror or str(e) or type(e).__name__
            raise OSError(e.errno, f"cannot listen on {address} ({self.name}): {reason}") from None
        except Exception as e:
            raise self._failed("start", e) from e

    @property
    def port(self) -> int:
        return self.inner.port

    @property
    def address(self) -> str:
        return self.inner.address

    def hold_for_app(self) -> None:
        try:
            self.inner.hold_for_app()
        except Exception:
            self._log("hold for the app")

    def stop_accepting(self) -> None:
        try:
            self.inner.stop_accepting()
        except Exception:
            self._log("stop accepting")

    async def drain(self, grace: float) -> int:
        """Calls cut; a front that fails or hangs counts as one cut."""
        try:
            async with asyncio.timeout(grace + DRAIN_OVERRUN):
                return int(await self.inner.drain(grace))
        except TimeoutError:
            log.error(
                f"plugin {self.owner!r}: front {self.name!r} did not drain within "
                f"{grace + DRAIN_OVERRUN:g} s; cut",
                extra={"fields": {"plugin": self.owner, "front": self.name}},
            )
        except Exception:
            self._log("drain")
        return 1

    def app_activity(self) -> AppActivity:
        try:
            activity = self.inner.app_activity()
        except Exception:
            self._log("tell the app's activity")
            return AppActivity(0, 0, 0)
        return activity if isinstance(activity, AppActivity) else AppActivity(0, 0, 0)
