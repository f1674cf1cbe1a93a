"""The server every fake LLM provider shares: start/stop, the script, the records, streaming.

A fake provider is an aiohttp app on 127.0.0.1 (ephemeral port) that answers the way a real
provider does on the wire. :class:`FakeProvider` holds the provider-neutral parts: the life
cycle, the queue of scripted steps (``fake_script``), the request records, hanging and dropped
connections, and sending a stream cut where a step says. :class:`ServedInThread` runs one on its
own event loop in a thread, so sync SDK clients and any test's loop can call it;
:func:`refused_url` is a URL nothing listens on. The wire formats are ``fake_openai`` and
``fake_anthropic``.
"""

from __future__ import annotations

__all__ = [
    "FakeProvider",
    "ServedInThread",
    "StreamFrames",
    "make_id",
    "refused_url",
    "sse",
]

import asyncio
import collections
import dataclasses
import json
import secrets
import socket
import threading
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from aiohttp import web
from fake_script import (
    Close,
    Fail,
    Hang,
    ProviderRequest,
    Reply,
    Step,
    StreamThenError,
    StreamThenFail,
)

#: seconds a stopping server gives in-flight handlers (released hangs, open streams) to finish
SHUTDOWN_TIMEOUT = 2.0
#: seconds a threaded server may take to start or stop before the test fails
THREAD_START_TIMEOUT = 10.0


class FakeProvider:
    """The server and the script; subclasses add the routes and the wire format.

    ``script(*steps)`` queues one step per model call (chat completions, embeddings, messages),
    consumed after the request passed the provider's own auth and validation; with the queue
    empty, calls get ``Reply()``. ``requests`` records every request, including refused ones.
    """

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[ProviderRequest] = []
        self._steps: collections.deque[Step] = collections.deque()
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release = asyncio.Event()
        self.port = 0

    # -- life cycle -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """The base URL the provider's SDK wants (overridden where the SDK wants ``/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeProvider:
        self._loop = asyncio.get_running_loop()
        app = web.Application(client_max_size=8 << 20)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._release.set()  # hanging handlers return, so the shutdown does not wait for them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeProvider:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- script and records (callable from any thread) ------------------------------------------

    def script(self, *steps: Step) -> None:
        """Queue ``steps`` for the next model calls, in order."""
        self._steps.extend(steps)

    @property
    def pending(self) -> int:
        """Steps not consumed yet."""
        return len(self._steps)

    def model_requests(self) -> list[ProviderRequest]:
        """The recorded requests to the model endpoints (not ``GET /v1/models``)."""
        return [r for r in self.requests if r.method == "POST"]

    def reset(self) -> None:
        """Forget the script and the records, and release every hanging call."""
        self._steps.clear()
        self.requests.clear()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._release_hangs)

    def _release_hangs(self) -> None:
        self._release.set()
        self._release = asyncio.Event()

    async def wait_requests(self, count: int, limit: float = 5.0) -> None:
        """Return once ``count`` model calls were received; TimeoutError after ``limit`` s."""
        async with asyncio.timeout(limit):
            while len(self.model_requests()) < count:  # noqa: ASYNC110 - another thread appends
                await asyncio.sleep(0.005)

    # -- helpers for the subclasses -------------------------------------------------------------

    async def record(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(ProviderRequest(request.method, request.path, headers, body))
        return body

    def next_step(self) -> Step:
        try:
            return self._steps.popleft()
        except IndexError:
            return Reply()

    async def hang(self) -> None:
        await self._release.wait()

    @staticmethod
    def drop(request: web.Request) -> None:
        """Abort the TCP connection (the client sees a reset, no more bytes)."""
        transport = request.transport
        if transport is not None:
            transport.abort()

    def fail(self, step: Fail) -> web.Response:
        """The provider's error answer for ``step``."""
        raise NotImplementedError

    def stream_error(self, status: int) -> bytes:
        """The provider's in-stream error event for ``status``."""
        raise NotImplementedError

    async def before_answer(
        self, request: web.Request, step: Step, streamed: bool
    ) -> web.StreamResponse | None:
        """Answer the steps that send no answer body (close, fail, hang); None for the others."""
        if isinstance(step, Close):
            self.drop(request)
            return web.Response(status=499)  # never sent: the transport is gone
        if isinstance(step, Fail):
            return self.fail(step)
        if isinstance(step, StreamThenError) and not streamed:
            return self.fail(Fail(step.status))
        if isinstance(step, Hang) and (step.after_chunks is None or not streamed):
            await self.hang()
            self.drop(request)
            return web.Response(status=499)
        return None

    async def stream(
        self,
        request: web.Request,
        step: Step,
        headers: Mapping[str, str],
        frames: StreamFrames,
    ) -> web.StreamResponse:
        """Send an SSE answer as ``step`` says: whole, cut, stalled or ended by an error event."""
        response = web.StreamResponse(status=200, headers=dict(headers))
        limit = len(frames.content)
        if isinstance(step, StreamThenFail | StreamThenError):
            limit = step.after_chunks
        elif isinstance(step, Hang) and step.after_chunks is not None:
            limit = step.after_chunks
        try:
            await response.prepare(request)
            for frame in [*frames.preamble, *frames.content[:limit]]:
                await response.write(frame)
            if isinstance(step, StreamThenFail):
                self.drop(request)
                return response
            if isinstance(step, Hang):
                await self.hang()
                self.drop(request)
                return response
            if isinstance(step, StreamThenError):
                await response.write(self.stream_error(step.status))
            else:
                for frame in frames.trailer:
                    await response.write(frame)
            await response.write_eof()
        except ConnectionError:  # the client went away mid-stream: nothing left to answer
            pass
        return response

    async def cut_short(
        self, request: web.Request, headers: Mapping[str, str], body: bytes
    ) -> web.StreamResponse:
        """:class:`StreamThenFail` on a non-streamed call: headers and half the body, then drop."""
        response = web.StreamResponse(status=200, headers=dict(headers))
        response.content_length = len(body)
        try:
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
        except ConnectionError:
            pass
        self.drop(request)
        return response


@dataclasses.dataclass(frozen=True)
class StreamFrames:
    """One streamed answer as encoded SSE frames, split where the scripted steps cut it.

    Each ``content`` item is one event that carries text or tool data (what ``after_chunks``
    counts), with the structural events just before it (a block's stop and the next one's start);
    ``preamble`` is what comes before the first of them, ``trailer`` what ends a whole stream.
    """

    preamble: list[bytes]
    content: list[bytes]
    trailer: list[bytes]


def sse(data: str, event: str | None = None) -> bytes:
    """One server-sent event frame (``data`` holds no newline: it is compact JSON)."""
    head = f"event: {event}\n" if event is not None else ""
    return f"{head}data: {data}\n\n".encode()


def refused_url(path: str = "") -> str:
    """A 127.0.0.1 URL whose port refuses connections (bound, then closed: nothing listens)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


P = TypeVar("P", bound=FakeProvider)


class ServedInThread(Generic[P]):
    """Run a fake provider on its own event loop in a daemon thread.

    ``with ServedInThread(FakeOpenAI()) as fake:`` — the server answers whatever loop or thread
    the test and the sidecar run in (sync SDK clients block their own thread, never the fake's).
    """

    def __init__(self, server: P) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"fake-{type(server).__name__}", daemon=True
        )

    def __enter__(self) -> P:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self.server.start(), self._loop)
        try:
            started.result(timeout=THREAD_START_TIMEOUT)
        except BaseException:  # a server that cannot start fails the test; no thread is left
            self._end_loop()
            raise
        return self.server

    def __exit__(self, *exc: object) -> None:
        stopped = asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop)
        try:
            stopped.result(timeout=THREAD_START_TIMEOUT)
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=THREAD_START_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()


def make_id(prefix: str) -> str:
    """A unique id in the provider's style: ``prefix`` then 24 random hex digits."""
    return f"{prefix}{secrets.token_hex(12)}"
