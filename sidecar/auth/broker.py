"""The credential broker: builds each upstream's provider and owns what providers share.

One broker per running sidecar, opened by the ``credentials`` lifespan (:mod:`.plugin`) and
published as ``sidecar.resources["credentials"]`` for the ``auth`` filter's factory. It owns:

- the **provider types** registered through ``sidecar_register_credentials``;
- one **aiohttp client** for control-plane calls (token endpoints), opened on first use, so a
  sidecar without OAuth2 upstreams never opens one (nor imports aiohttp: a provider that needs
  it imports it when it is built);
- the **background tasks** providers start (token fetches and refreshers): each is cancelled and
  awaited when the sidecar stops, after the listeners drained.

Providers themselves are kept per upstream through ``RouteContext.shared``, keyed by the
upstream's ``auth`` section and URL: a reload that leaves them alone keeps the provider, and so
its cached token; one that changes them builds a new provider (the old one's refresher goes
idle and stops, see :mod:`.tokens`).
"""

from __future__ import annotations

__all__ = ["RESOURCE", "CredentialBroker"]

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from ..api import AuthConfigProblem, CredentialProvider, ProviderContext, SharedKey
from ..config.problems import validation_problems
from .tokens import TokenFetchError

if TYPE_CHECKING:
    import aiohttp

    from ..api import RouteContext
    from ..telemetry.metrics import Metrics

log = logging.getLogger("sidecar.auth")

#: The key of the live broker in ``sidecar.resources`` / ``RouteContext.resources``.
RESOURCE = "credentials"


#: Each upstream's provider, kept across reloads that leave its ``auth`` alone.
PROVIDER: SharedKey[CredentialProvider] = SharedKey("auth")


class CredentialBroker:
    """Builds providers and owns their shared client and tasks (see the module)."""

    def __init__(
        self,
        types: Mapping[str, type[CredentialProvider]],
        metrics: Metrics,
        *,
        clock: Callable[[], float] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.types = dict(types)
        self.metrics = metrics
        self._clock = clock
        self._wall = wall
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def provider(self, ctx: RouteContext) -> CredentialProvider | None:
        """The provider of ``ctx``'s upstream (``None`` without ``auth``); raises
        :class:`AuthConfigProblem` (a ``LookupError`` with a key path) when it cannot be built."""
        auth = ctx.upstream.auth
        if auth is None:
            return None
        cls = self.types.get(auth.type)
        if cls is None:
            names = ", ".join(sorted(self.types)) or "none"
            raise AuthConfigProblem(
                "auth.type", f"no credential provider named {auth.type!r} (registered: {names})"
            )
        try:
            settings = cls.settings_model.model_validate(auth.options())
        except ValidationError as e:  # the config check reports these first; here for embedders
            first = validation_problems(e, "", ("auth",), cls.settings_model)[0]
            raise AuthConfigProblem(first.path, first.reason) from None
        url = ctx.upstream.url
        parts = urlsplit(url) if url else None
        base = parts.path.rstrip("/") if parts else ""
        # the Host the http adapter sends: the upstream's ``host``, else the URL's authority
        authority = ctx.upstream.host or (parts.netloc if parts else "")
        key = (json.dumps(auth.model_dump(mode="json"), sort_keys=True), base, authority)
        context = ProviderContext(
            upstream=ctx.upstream_name,
            type_name=auth.type,
            base_path=base,
            metrics=ctx.metrics,
            log=log,
            spawn=self.spawn,
            http_session=self.http_session,
            clock=self._clock or asyncio.get_running_loop().time,
            wall=self._wall,
            authority=authority,
        )
        provider: CredentialProvider = ctx.shared(PROVIDER, key, lambda: cls(settings, context))
        return provider

    # --- what providers share ----------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the broker owns (cancelled and awaited when it closes)."""
        if self._closed:
            coro.close()
            raise RuntimeError("the credential broker is closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # retrieved here, so a failed fetch nobody awaited is quiet
        if error is not None and not isinstance(error, TokenFetchError):
            log.error(
                "credential task failed",
                exc_info=error,
                extra={"fields": {"task": task.get_name()}},
            )

    def http_session(self) -> aiohttp.ClientSession:
        """The shared client for token endpoints (opened on first use)."""
        if self._closed:
            raise RuntimeError("the credential broker is closed")
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, ttl_dns_cache=60),
                headers={"User-Agent": "sidecar"},
                # proxies from the environment are not used: token requests carry the client
                # secret, and only the configured endpoint may see it
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        """Cancel every task and close the client (the sidecar stops)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
