"""A user name and password in, a verdict out: the cache first, then the directory, once.

:class:`Checker` puts a :class:`~.cache.VerdictCache` in front of a directory and makes
concurrent calls with the same credentials wait for one directory check instead of each making
their own (a page load sends several calls at once). A directory that gives no verdict raises
:class:`~.directory.DirectoryDown` to every waiter and nothing is cached.

Not here: how the directory is asked (:mod:`.directory`), what a verdict allows (:mod:`.gate`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from .basic import Credentials
from .cache import Verdict, VerdictCache

log = logging.getLogger("sidecar.plugin.ldap")
#: a directory that is down is logged at most this often (seconds)
LOG_EVERY = 10.0


class Asks(Protocol):
    """What a checker needs of a directory (a fake one in unit tests)."""

    async def check(self, username: str, password: str) -> Verdict: ...

    async def aclose(self) -> None: ...


class Checker:
    """The cache, single-flight, then the directory (see the module docstring)."""

    def __init__(self, directory: Asks, cache: VerdictCache) -> None:
        self.directory = directory
        self.cache = cache
        self._inflight: dict[bytes, asyncio.Future[Verdict]] = {}
        self._logged = -LOG_EVERY
        #: what happened since start, for ``/upstreams`` (``describe``)
        self.counts = {"cache_hits": 0, "granted": 0, "refused": 0, "unavailable": 0}

    async def verdict(self, credentials: Credentials) -> Verdict:
        key = self.cache.key(credentials.username, credentials.password)
        cached = self.cache.get(key)
        if cached is not None:
            self.counts["cache_hits"] += 1
            return cached
        waiting = self._inflight.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            verdict = await self.directory.check(credentials.username, credentials.password)
        except BaseException as e:
            future.set_exception(e if isinstance(e, Exception) else RuntimeError("cancelled"))
            future.exception()  # read: no "never retrieved" warning when nobody waited
            if isinstance(e, Exception):
                self.counts["unavailable"] += 1
                self._log_down(e)
            raise
        finally:
            del self._inflight[key]
        self.counts["granted" if verdict.granted else "refused"] += 1
        self.cache.put(key, verdict)
        future.set_result(verdict)
        return verdict

    def _log_down(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY:
            self._logged = now
            # the reason only: never a user name or a password
            log.warning(
                "the LDAP directory gave no verdict; calls get 503",
                extra={"fields": {"reason": str(error)[:200]}},
            )

    def describe(self) -> dict[str, int]:
        """Directory verdicts and cache hits since start (``/upstreams``, upstream ``@app``)."""
        return {**self.counts, "cache_entries": len(self.cache)}

    def gauges(self) -> tuple[tuple[str, str, float], ...]:
        return (
            (
                "sidecar_ldap_cache_entries",
                "LDAP verdicts held in the plugin's cache.",
                float(len(self.cache)),
            ),
        )

    async def aclose(self) -> None:
        self.cache.clear()
        await self.directory.aclose()
