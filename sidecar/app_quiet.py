"""The wait for the app to go quiet on SIGTERM (``shutdown.app_quiet_period``).

In the classic Kubernetes layout the app and the sidecar get SIGTERM at the same moment, and the
app may still call out while it drains its own requests. So, before the egress listeners drain,
the sidecar waits until the app has had **no call in flight and started none** (no new
connection, no new request or gRPC call) for the quiet period, or until the grace ends, whichever
comes first. Each egress listener reports its app activity (:class:`AppActivity`); this module
polls them every :data:`QUIET_POLL` seconds and logs the phase.

An idle connection does not hold the wait: an app's keep-alive pool or gRPC channel stays open
for as long as the app lives, so counting it would hold every such app until the grace, which is
the weakness of Istio's ``EXIT_ON_ZERO_ACTIVE_CONNECTIONS``. Idle connections are left alone
during the wait (closing them would only race the app's next call) and closed by the drain that
follows. A brief call between two polls is not missed: ``began`` counts every connection and
call ever started, so any change restarts the quiet clock.

Not here: what a listener does during the wait (``hold_for_app`` on each listener), the drain
itself (the sidecar's ``drain``).
"""

from __future__ import annotations

__all__ = ["QUIET_POLL", "AppActivity", "AppFacing", "wait_for_quiet_app"]

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from .api.fronts import AppActivity

log = logging.getLogger("sidecar")

#: How often (seconds) the listeners' activity is looked at during the wait.
QUIET_POLL = 0.05
#: While the app stays busy, its activity is logged this often (seconds).
PROGRESS_EVERY = 5.0


class AppFacing(Protocol):
    """An egress listener, as the wait sees it."""

    def app_activity(self) -> AppActivity: ...


def _total(listeners: Sequence[AppFacing]) -> AppActivity:
    each = [listener.app_activity() for listener in listeners]
    return AppActivity(
        sum(a.connections for a in each), sum(a.in_flight for a in each), sum(a.began for a in each)
    )


def _log_activity(level: int, msg: str, seen: AppActivity, **fields: float) -> None:
    counts = {"connections": seen.connections, "in_flight": seen.in_flight}
    log.log(level, msg, extra={"fields": {**counts, **fields}})


async def wait_for_quiet_app(
    listeners: Sequence[AppFacing], quiet_period: float, deadline: float
) -> bool:
    """Return once the app has been quiet for ``quiet_period`` (``True``) or at ``deadline``,
    loop time (``False``: the grace ended first). Logs each phase."""
    loop = asyncio.get_running_loop()
    start = now = loop.time()
    seen = _total(listeners)
    _log_activity(
        logging.INFO,
        "waiting for the app to go quiet",
        seen,
        quiet_period_s=quiet_period,
        grace_left_s=round(max(0.0, deadline - start), 3),
    )
    # a quiet app at the signal (a native sidecar's: the app is gone) is quiet from the signal
    quiet_since: float | None = None if seen.in_flight else start
    progress_at = start + PROGRESS_EVERY
    while True:
        if quiet_since is not None and now - quiet_since >= quiet_period:
            log.info("app quiet", extra={"fields": {"waited_s": round(now - start, 3)}})
            return True
        if now >= deadline:
            _log_activity(logging.WARNING, "grace ended", seen, waited_s=round(now - start, 3))
            return False
        wake = min(deadline, now + QUIET_POLL)
        if quiet_since is not None:
            wake = min(wake, quiet_since + quiet_period)
        await asyncio.sleep(wake - now)  # a poll with a deadline: both bounds are above
        now = loop.time()
        activity = _total(listeners)
        if activity.in_flight:
            quiet_since = None
        elif activity.began != seen.began or quiet_since is None:
            quiet_since = now  # something started (and maybe ended) since the last look
        seen = activity
        if now >= progress_at:
            progress_at = now + PROGRESS_EVERY
            _log_activity(
                logging.INFO,
                "waiting for the app to go quiet",
                seen,
                waited_s=round(now - start, 3),
            )
