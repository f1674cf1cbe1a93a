"""A real JWKS endpoint on 127.0.0.1 (aiohttp, in a thread with its own event loop), started
once per session: the keys it serves can be rotated and it can be made to fail."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from typing import Any

from aiohttp import web


class JwksServer:
    """``url`` serves ``document`` at ``/jwks``; ``hits`` counts the requests; with
    ``failing`` set it answers 503."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.document: dict[str, Any] = {"keys": []}
        self.failing = False
        self.hits = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/jwks"

    async def _serve(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.failing:
            return web.Response(status=503, text="down")
        return web.Response(body=json.dumps(self.document), content_type="application/json")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/jwks", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        server = site._server  # noqa: SLF001 - aiohttp shows the bound port only here
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def start(self) -> JwksServer:
        """Start it; raises (the test fails) when it cannot listen within 10 s."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def serve(self, document: dict[str, Any], *, failing: bool = False) -> None:
        self.document, self.failing, self.hits = document, failing, 0
