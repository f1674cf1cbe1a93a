"""A real AWS-like upstream for the integration tests: an aiohttp server on 127.0.0.1, in a
thread of its own, that verifies every call's SigV4 signature independently (botocore
recomputes it from the request as received) and serves container credentials.

It answers 200 with what it received when the signature verifies, 403 with the reason when it
does not; ``/container-credentials`` answers as the ECS agent does (or fails, when told to).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from reference import verify_received

CREDENTIALS_PATH = "/container-credentials"
CONTAINER_TOKEN = "container-auth-token-123"  # noqa: S105 - a test value


@dataclass
class Received:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    verdict: str | None


@dataclass
class Script:
    """What the server knows and does; reset between tests."""

    #: key id -> (secret, session token or None)
    secrets: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    #: what the credentials endpoint hands out; None: it answers 500
    container_keys: dict[str, str] | None = None
    credential_fetches: int = 0
    #: this many calls are answered 503 (after being verified and recorded)
    fail_next: int = 0

    def reset(self) -> None:
        self.fail_next = 0
        self.secrets.clear()
        self.received.clear()
        self.container_keys = None
        self.credential_fetches = 0


class VerifyingServer:
    """Started once a session; a server that cannot start fails the tests (never skips)."""

    def __init__(self) -> None:
        self.script = Script()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sigv4-verifier", daemon=True)
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.authority}"

    def __enter__(self) -> VerifyingServer:
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None or not self.port:
            raise RuntimeError(f"the verifying server did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as e:  # noqa: BLE001 - reported to the starting thread
            self._error = e
            self._ready.set()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # noqa: SLF001 - aiohttp names no public accessor for the port
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path == CREDENTIALS_PATH:
            return self._credentials(request)
        body = await request.read()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        verdict = verify_received(
            method=request.method,
            authority=self.authority,
            raw_target=request.raw_path,
            headers=headers,
            body=body,
            secrets=dict(self.script.secrets),
        )
        self.script.received.append(
            Received(request.method, request.raw_path, headers, body, verdict)
        )
        if verdict is not None:
            return web.json_response({"error": verdict}, status=403)
        if self.script.fail_next > 0:
            self.script.fail_next -= 1
            return web.json_response({"error": "try again"}, status=503)
        return web.json_response({"target": request.raw_path, "length": len(body)})

    def _credentials(self, request: web.Request) -> web.Response:
        self.script.credential_fetches += 1
        if request.headers.get("authorization") != CONTAINER_TOKEN:
            return web.json_response({"error": "unauthorized"}, status=401)
        keys = self.script.container_keys
        if keys is None:
            return web.json_response({"error": "down"}, status=500)
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        answer: dict[str, Any] = {**keys, "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
        return web.Response(text=json.dumps(answer), content_type="application/json")
