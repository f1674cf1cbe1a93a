"""Running a sidecar as a process: signals, config-file watching, the ordered shutdown.

- SIGTERM / SIGINT: drain (``Sidecar.drain``) and return, so the process exits 0. After SIGTERM
  the drain first waits for the app to go quiet (``shutdown.app_quiet_period``): in the classic
  Kubernetes layout the app got SIGTERM at the same moment and may still call out through the
  sidecar. SIGINT (Ctrl-C) comes from a person at a terminal, not a pod's termination: it drains
  at once;
- SIGHUP: reload the config file;
- the config file changing on disk: reload too. The file is polled with ``stat`` (no inotify:
  it works on every filesystem and in every container). ``stat`` follows symlinks, so a
  Kubernetes ConfigMap update, which points the ``..data`` symlink at a new directory, is seen as
  a new inode even though the path the sidecar was given never changed.

Signal handlers are installed before start-up, so a SIGHUP that arrives while the sidecar is
starting is kept for after it started (instead of killing the process, SIGHUP's default), and a
SIGTERM then makes it drain as soon as it is up. What this module is not: the reload itself
(:meth:`Sidecar.reload`) or the drain steps (:meth:`Sidecar.drain`).
"""

from __future__ import annotations

__all__ = ["WATCH_INTERVAL", "serve", "watch_file"]

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from .app import Sidecar
from .fdlimit import Exhaustion

log = logging.getLogger("sidecar")

#: How often (seconds) the config file is checked for changes.
WATCH_INTERVAL = 1.0
#: After a change is seen, the file is read once it looks the same twice this far apart and
#: has not been written for SETTLE_QUIET seconds, or after SETTLE_CHECKS looks at the most.
SETTLE_INTERVAL = 0.1
SETTLE_QUIET = 0.5
SETTLE_CHECKS = 50

Fingerprint = tuple[int, int, int, int, int]


def fingerprint(path: str) -> Fingerprint | None:
    """What changes when the file's content may have: ``None`` while the file is missing."""
    try:
        st = os.stat(path)  # follows symlinks: a swapped ConfigMap link gives a new inode
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _quiet_since(seen: Fingerprint) -> float:
    """Seconds between now and the file's last write (its mtime, either way: skewed clocks)."""
    return abs(time.time_ns() - seen[3]) / 1e9


async def watch_file(
    path: str, changed: Callable[[], None], interval: float = WATCH_INTERVAL
) -> None:
    """Call ``changed()`` each time ``path`` is seen to change; runs until cancelled.

    A file that disappears is not a change (an editor or kubelet is mid-swap); when it comes
    back different, it is.
    """
    seen = fingerprint(path)
    while True:
        await asyncio.sleep(interval)
        now = fingerprint(path)
        if now is None or now == seen:
            continue
        # a file rewritten in place (``>``) is briefly empty or half-written: wait until it
        # stops changing and its last write is SETTLE_QUIET old, so the reload reads what the
        # writer finished (a writer pausing longer mid-file is still caught: an empty file, or
        # one that lost every upstream, is refused by the reload itself)
        for _ in range(SETTLE_CHECKS):
            await asyncio.sleep(SETTLE_INTERVAL)
            again = fingerprint(path)
            if again == now and again is not None and _quiet_since(again) >= SETTLE_QUIET:
                break
            now = again
        if now is None:
            continue
        seen = now
        log.info("config file changed", extra={"fields": {"file": path}})
        changed()


async def _reloader(sidecar: Sidecar, wanted: asyncio.Event) -> None:
    """One reload at a time; triggers that arrive during a reload are coalesced into one more."""
    while True:
        await wanted.wait()
        wanted.clear()
        try:
            await sidecar.reload()
        except Exception:  # Sidecar.reload refuses bad configs itself; this is a bug
            log.exception("config reload failed")


def _tell_accept_failures(loop: asyncio.AbstractEventLoop, sidecar: Sidecar) -> None:
    """Out of file handles, asyncio's accept stops for a second and reports to the loop's
    exception handler, which would print a traceback per try: count it and log once per
    episode instead (:class:`sidecar.fdlimit.Exhaustion`). uvloop (libuv) accepts and closes
    such connections without telling; the listeners' connection caps keep it from happening."""
    default = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError) and Exhaustion.is_exhaustion(error):
            sidecar.exhaustion.seen("accept", error)
        elif default is not None:
            default(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def serve(sidecar: Sidecar, *, reload_requested: Callable[[], bool] | None = None) -> None:
    """Start, serve until SIGTERM/SIGINT, then drain.

    ``reload_requested()`` says whether a SIGHUP arrived before this was called (the CLI catches
    them from its first line); if so, the sidecar reloads once it has started.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reload_wanted = asyncio.Event()
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    stopped_by: list[signal.Signals] = []  # the first one says how to stop

    def stop_on(sig: signal.Signals) -> None:
        stopped_by.append(sig)
        stop.set()

    loop.add_signal_handler(signal.SIGTERM, stop_on, signal.SIGTERM)
    loop.add_signal_handler(signal.SIGINT, stop_on, signal.SIGINT)
    loop.add_signal_handler(signal.SIGHUP, reload_wanted.set)
    _tell_accept_failures(loop, sidecar)
    if reload_requested is not None and reload_requested():
        reload_wanted.set()
    tasks: list[asyncio.Task[None]] = []
    started = False
    try:
        # SIGTERM while starting (a lifespan waiting on something that never comes) stops the
        # start-up: start() cleans up after itself when it fails or is cancelled
        started = await _start_unless_stopped(sidecar, stop)
        if not started:
            log.warning("stopped while starting", extra={"fields": {"signal": stopped_by[0].name}})
            return
        # both tasks are owned here and cancelled before the drain starts
        tasks.append(loop.create_task(_reloader(sidecar, reload_wanted)))
        if sidecar.config_path is not None:
            tasks.append(loop.create_task(watch_file(sidecar.config_path, reload_wanted.set)))
        await stop.wait()
        shutdown = sidecar.config.shutdown
        quiet = shutdown.app_quiet_period if stopped_by[:1] == [signal.SIGTERM] else 0.0
        log.info(
            "draining",
            extra={"fields": {"grace_s": shutdown.drain_timeout, "app_quiet_period_s": quiet}},
        )
    finally:
        # 1. no more reloads: a config swap during the drain would only race it
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sig in handled:
            loop.remove_signal_handler(sig)
        # 2. the drain itself, after the app went quiet (only SIGTERM means the app may be
        #    going down with us; a start-up failure, a bug or Ctrl-C has nothing to wait for).
        #    A second SIGTERM or SIGINT now has its default action (stop at once), but SIGHUP's
        #    would kill the process and cut the app's egress mid-wait: it is ignored until done
        if started:
            loop.add_signal_handler(signal.SIGHUP, _reload_skipped)
            try:
                await sidecar.drain(wait_for_app=stopped_by[:1] == [signal.SIGTERM])
            finally:
                loop.remove_signal_handler(signal.SIGHUP)
    log.info("stopped")


async def _start_unless_stopped(sidecar: Sidecar, stop: asyncio.Event) -> bool:
    """Start the sidecar; ``False`` when ``stop`` was set first (the start is cancelled)."""
    loop = asyncio.get_running_loop()
    starting = loop.create_task(sidecar.start())
    stopping = loop.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if starting.done():
        starting.result()  # raises what start-up raised
        return True
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    return False


def _reload_skipped() -> None:
    log.warning("reload skipped", extra={"fields": {"state": "draining"}})
