"""The ``shutdown:`` section: how long SIGTERM waits for the app to go quiet and for calls to
finish.

Only the keys, their defaults and how they must relate (the quiet period fits inside the
grace). The shutdown sequence itself is the lifecycle's, not this module's.
"""

from __future__ import annotations

__all__ = ["DEFAULT_APP_QUIET_PERIOD", "ShutdownConfig"]

from typing import Any

from pydantic import model_validator
from pydantic_core import PydanticCustomError

from .base import Model
from .types import Duration, parse_duration

#: ``shutdown.app_quiet_period`` when the file leaves it out (and ``drain_timeout`` is longer).
DEFAULT_APP_QUIET_PERIOD = 2.0


class ShutdownConfig(Model):
    """``shutdown:``: what SIGTERM does (docs/operations.md, "Signals and the lifecycle").

    Both keys are read when SIGTERM arrives, so a reload changes the next shutdown (they are not
    restart-only). ``app_quiet_period`` must be shorter than ``drain_timeout``: the grace bounds
    the whole shutdown, quiet wait included, and a quiet period as long as the grace would leave
    a busy app's last calls no time to finish. Left out of the file while ``drain_timeout`` is
    2 s or less, it is 0 (off), so a short grace keeps meaning "drain at once".
    """

    #: the whole shutdown's bound: the wait for the app to go quiet, then in-flight calls, then
    #: what is still running is cut (0: cut at once).
    drain_timeout: Duration = 20.0
    #: on SIGTERM the egress listeners (HTTP, gRPC) keep serving the app until it has had no
    #: call in flight, and started none, for this long (or the grace ends); then the drain runs.
    #: For the classic layout, where the app gets SIGTERM at the same moment and still calls out
    #: while it drains. 0: off, drain at once (a native sidecar needs none: Kubernetes stops the
    #: app first, and an app that is gone is quiet, so it costs this long at most).
    app_quiet_period: Duration = DEFAULT_APP_QUIET_PERIOD

    @model_validator(mode="before")
    @classmethod
    def _default_quiet_fits_the_grace(cls, data: Any) -> Any:
        if isinstance(data, dict) and "app_quiet_period" not in data:
            try:
                grace = parse_duration(data.get("drain_timeout", 20.0))
            except (PydanticCustomError, TypeError, ValueError):
                return data  # the field's own validation says what is wrong
            if grace <= DEFAULT_APP_QUIET_PERIOD:
                return {**data, "app_quiet_period": 0.0}
        return data

    @model_validator(mode="after")
    def _quiet_within_the_grace(self) -> ShutdownConfig:
        quiet, grace = self.app_quiet_period, self.drain_timeout
        if quiet and quiet >= grace:
            raise PydanticCustomError(
                "quiet_period",
                "app_quiet_period ({quiet}s) must be shorter than drain_timeout ({grace}s), "
                "which bounds the whole shutdown; 0 turns the wait for the app off",
                {"quiet": f"{quiet:g}", "grace": f"{grace:g}"},
            )
        return self
