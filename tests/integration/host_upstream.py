"""An aiohttp upstream outside the container, on the host's loopback, for synchronous tests.

The containers that call it share the host's network namespace (``--network host``), as the
containers of a pod share one, so it binds 127.0.0.1 like every other test server. It runs in a
thread with its own event loop, so synchronous tests (which drive podman, or a sidecar process,
with blocking, bounded calls) can use it. Not here: podman itself (``podman_cli``).
"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

#: How long a call to /slow takes to be answered (seconds): the upstream's own pace.
SLOW = 1.0
#: Bound (seconds) on the server coming up and going down.
WAIT = 10.0


class HostUpstream:
    """``with HostUpstream(host, port) as up: ... up.requests`` (path with query, headers).

    ``/slow`` answers ``slow answer`` after :data:`SLOW` seconds; anything else answers
    ``hello from the host`` at once.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._up = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="host-upstream", daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path_qs, dict(request.headers)))
        if request.path == "/slow":
            await asyncio.sleep(SLOW)
            return web.Response(text="slow answer")
        return web.Response(text="hello from the host")

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # reported by __enter__, which waits for it
            self._error = e
        finally:
            self._up.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            self._up.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def __enter__(self) -> HostUpstream:
        self._thread.start()
        if not self._up.wait(WAIT) or self._error is not None:
            raise AssertionError(
                f"upstream on {self.host}:{self.port} did not start: {self._error!r}"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(WAIT)
