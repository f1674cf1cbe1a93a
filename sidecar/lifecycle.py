"""Running a sidecar as a process: signals, config-file watching, the ordered shutdown.

- SIGTERM / SIGINT: drain (``Sidecar.drain``) and return, so the process exits 0;
- SIGHUP: reload the config file;
- the config file changing on disk (a Kubernetes ConfigMap swaps a symlink): reload too.
"""

from __future__ import annotations

__all__ = ["serve"]

import asyncio
import contextlib
import logging
import os
import signal

from .app import Sidecar

log = logging.getLogger("sidecar")

#: How often the config file is checked for changes.
WATCH_INTERVAL = 1.0


def _fingerprint(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)  # follows symlinks, so a swapped ConfigMap link is seen
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino, st.st_size)


async def _watch(sidecar: Sidecar, path: str) -> None:
    seen = _fingerprint(path)
    while True:
        await asyncio.sleep(WATCH_INTERVAL)
        now = _fingerprint(path)
        if now is not None and now != seen:
            seen = now
            log.info("config file changed", extra={"fields": {"file": path}})
            await sidecar.reload()


async def serve(sidecar: Sidecar) -> None:
    """Start, serve until SIGTERM/SIGINT, then drain."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        t = loop.create_task(sidecar.reload())
        reloads.add(t)
        t.add_done_callback(reloads.discard)

    await sidecar.start()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    watcher = None
    if sidecar.config_path is not None:
        watcher = loop.create_task(_watch(sidecar, sidecar.config_path))
    try:
        await stop.wait()
        log.info("draining", extra={"fields": {"grace_s": sidecar.config.shutdown.drain_timeout}})
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await sidecar.drain()
    log.info("stopped")
