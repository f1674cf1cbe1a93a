"""A JWKS endpoint's keys, cached: refreshed on an interval, refetched for an unknown ``kid``,
rate-limited, and served stale for a bounded time while the endpoint is down.

- The first fetch (and one past the stale bound) is waited for; a refresh of keys still held
  runs in the background while they serve, so no call waits for a routine refresh.
- At most one fetch is in flight per endpoint; calls that must wait share it.
- A fetch starts at most once per ``min_refetch_interval``, however many tokens name unknown
  kids: a flood of random kids costs the endpoint one request per interval.
- A failed refresh keeps the keys held until ``refresh_interval + max_stale`` after the last
  good fetch; past that, with no keys, calls get 503 ``jwt_keys_unavailable``.
- Answers are bounded (``max_bytes``, ``max_keys``, ``timeout``).

The HTTP client is a bounded aiohttp session owned by :class:`KeyStore`, which the plugin's
lifespan closes at shutdown. Not the sidecar's per-route client: that one only reaches its
route's upstream, and the JWKS endpoint is another address.
"""

from __future__ import annotations

__all__ = ["Fetch", "JwksKeys", "KeyStore"]

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .config import JwksConfig
from .errors import KeysUnavailable

if TYPE_CHECKING:
    from .keys import Key

LOG = logging.getLogger("sidecar.plugin.jwt")
#: ``fetch(settings) -> body``; raises on any failure
Fetch = Callable[[JwksConfig], Awaitable[bytes]]
#: endpoints held at once (each reload with changed settings may add one; the oldest go)
MAX_ENDPOINTS = 64


class JwksKeys:
    """The keys of one JWKS endpoint (see the module docstring)."""

    def __init__(
        self, cfg: JwksConfig, fetch: Fetch, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cfg = cfg
        self._fetch = fetch
        self._clock = clock
        self.keys: list[Key] = []
        #: when the keys held were fetched (None: never)
        self.fetched_at: float | None = None
        #: when the last fetch started (the rate limit counts from it)
        self.attempted_at: float | None = None
        #: fetches started, for tests and /metrics-like reads
        self.fetches = 0
        self._inflight: asyncio.Task[None] | None = None

    async def candidates(self, kid: str | None, alg: str) -> list[Key]:
        """The keys to try for a token naming ``kid`` and ``alg``; raises
        :class:`KeysUnavailable` when no usable key set is held or can be fetched."""
        now = self._clock()
        self._expire(now)
        if self.fetched_at is None:
            await self._refresh(now)  # nothing to serve meanwhile: wait for it (bounded)
            if self.fetched_at is None:
                raise KeysUnavailable()
        elif now - self.fetched_at >= self.cfg.refresh_interval:
            self._start(now)  # in the background: the keys held serve meanwhile
        found = self._match(kid, alg)
        if not found and kid is not None:
            await self._refresh(self._clock())  # maybe a rotation: once per interval
            found = self._match(kid, alg)
        return found

    def _match(self, kid: str | None, alg: str) -> list[Key]:
        if kid is not None:
            return [k for k in self.keys if k.kid == kid and k.verifies(alg)]
        return [k for k in self.keys if k.verifies(alg)]

    def _expire(self, now: float) -> None:
        """Drop keys older than the refresh interval plus the stale allowance."""
        if self.fetched_at is not None and (
            now - self.fetched_at > self.cfg.refresh_interval + self.cfg.max_stale
        ):
            self.keys, self.fetched_at = [], None

    def _start(self, now: float) -> asyncio.Task[None] | None:
        """The fetch in flight, started now unless the rate limit says not yet (None)."""
        if self._inflight is None:
            if self.attempted_at is not None and now - self.attempted_at < (
                self.cfg.min_refetch_interval
            ):
                return None  # rate-limited: the keys held (if any) are what there is
            self.attempted_at = now
            self.fetches += 1
            self._inflight = asyncio.ensure_future(self._fetch_once())
        return self._inflight

    async def _refresh(self, now: float) -> None:
        task = self._start(now)
        if task is not None:
            # shielded: a caller that goes away does not cancel the fetch others wait for
            await asyncio.shield(task)

    async def _fetch_once(self) -> None:
        from .keys import parse_jwks  # PyJWT and cryptography: only once a JWKS is used

        try:
            body = await self._fetch(self.cfg)
            keys = parse_jwks(body, self.cfg.max_keys)
        except Exception as e:  # noqa: BLE001 - any failure keeps the keys held
            LOG.warning(
                "jwks fetch failed; keeping the keys held",
                # the host only: a URL's userinfo or query could carry a credential
                extra={"fields": {"jwks_host": _host(self.cfg.url), "error": type(e).__name__}},
            )
        else:
            self.keys, self.fetched_at = keys, self._clock()
        finally:
            self._inflight = None

    def cancel(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


class KeyStore:
    """The JWKS caches of a running sidecar, one per endpoint settings, kept across reloads;
    owns the HTTP session their fetches use."""

    def __init__(self) -> None:
        self._caches: OrderedDict[JwksConfig, JwksKeys] = OrderedDict()
        self._session: object | None = None
        #: the TLS context of each cache whose endpoint has a private CA (``jwks.ca``)
        self._tls: dict[JwksConfig, ssl.SSLContext] = {}

    def jwks(self, cfg: JwksConfig) -> JwksKeys:
        """The cache of ``cfg``'s endpoint; reads ``cfg.ca`` now (``OSError`` or
        ``ssl.SSLError`` when it cannot be used)."""
        cache = self._caches.get(cfg)
        if cache is None:
            if cfg.ca is not None:
                self._tls[cfg] = ssl.create_default_context(cafile=cfg.ca)
            cache = self._caches[cfg] = JwksKeys(cfg, self.fetch)
            while len(self._caches) > MAX_ENDPOINTS:
                dropped, old = self._caches.popitem(last=False)
                old.cancel()
                self._tls.pop(dropped, None)
        self._caches.move_to_end(cfg)
        return cache

    async def fetch(self, cfg: JwksConfig) -> bytes:
        """GET ``cfg.url``: a 200 whose body is at most ``max_bytes``, within ``timeout``."""
        import aiohttp  # only a sidecar with a JWKS provider needs it

        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=8),
                headers={"accept": "application/jwk-set+json, application/json"},
            )
        session = self._session
        assert isinstance(session, aiohttp.ClientSession)
        tls: ssl.SSLContext | bool = self._tls.get(cfg, True)  # True: the system's CAs
        async with asyncio.timeout(cfg.timeout):
            async with session.get(cfg.url, allow_redirects=False, ssl=tls) as answer:
                if answer.status != 200:
                    raise ValueError(f"JWKS answered {answer.status}")
                body = bytearray()
                async for chunk in answer.content.iter_chunked(16384):
                    body += chunk
                    if len(body) > cfg.max_bytes:
                        raise ValueError("JWKS answer over max_bytes")
        return bytes(body)

    async def close(self) -> None:
        for cache in self._caches.values():
            cache.cancel()
        session, self._session = self._session, None
        if session is not None:
            import aiohttp

            assert isinstance(session, aiohttp.ClientSession)
            await session.close()
