"""What every fake LLM provider shares: the script of answers, the recorded requests, the server.

A fake provider is an aiohttp app on 127.0.0.1 (ephemeral port) that answers the way a real
provider does on the wire. This module holds the provider-neutral parts: the scripted steps
(:class:`Reply`, :class:`Fail`, :class:`Hang`, :class:`StreamThenFail`, :class:`StreamThenError`,
:class:`Close`), the request record, the start/stop life cycle, connection dropping, the
deterministic echo answer and its word-count usage, :class:`ServedInThread` (a server on its own
event loop in a thread, so sync SDK clients and any test loop can call it) and :func:`refused_url`.
It is not a provider: the wire formats live in ``fake_openai`` and ``fake_anthropic``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import re
import secrets
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from aiohttp import web

#: seconds a stopping server gives in-flight handlers (released hangs, open streams) to finish
SHUTDOWN_TIMEOUT = 2.0
#: seconds a threaded server may take to start or stop before the test fails
THREAD_START_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class ToolCall:
    """One tool call the model makes; ``id`` is generated in the provider's format when None."""

    name: str
    arguments: Mapping[str, Any]
    id: str | None = None


@dataclasses.dataclass(frozen=True)
class Reply:
    """A successful answer (the default step: ``Reply()``).

    ``text`` None means the deterministic echo of the last user-side message (see
    :func:`echo_text`), unless ``tool_calls`` are given, then there is no text. ``stop`` is the
    provider's own finish/stop reason (``"length"`` for OpenAI, ``"max_tokens"`` for Anthropic,
    ...); None derives it: tool calls, the request's token limit, a stop sequence, else a normal
    end. Usage is the word counts unless ``input_tokens``/``output_tokens`` are given.
    """

    text: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    stop: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclasses.dataclass(frozen=True)
class Fail:
    """An error answer with the provider's own error body (429, 500, 503, 529, ...).

    ``retry_after`` becomes the ``retry-after`` header (seconds, or a string sent verbatim, e.g.
    an HTTP date); ``message``/``type_`` override the provider's usual wording for the status.
    """

    status: int
    retry_after: int | str | None = None
    message: str | None = None
    type_: str | None = None


@dataclasses.dataclass(frozen=True)
class Hang:
    """Never answer (until the test resets or stops the server): for timeouts.

    With ``after_chunks`` and a streamed request, the response starts and that many content events
    are sent first, then the stream stalls.
    """

    after_chunks: int | None = None


@dataclasses.dataclass(frozen=True)
class StreamThenFail:
    """Send ``after_chunks`` content events (after the stream's preamble), then drop the connection.

    A non-streamed request gets its status line and headers, then the connection drops.
    """

    after_chunks: int


@dataclasses.dataclass(frozen=True)
class StreamThenError:
    """Send ``after_chunks`` content events, then the provider's in-stream error event, then end.

    That is how the providers report an error once a stream has started (Anthropic: ``event:
    error`` with e.g. ``overloaded_error``; OpenAI: a ``data: {"error": ...}`` line). A
    non-streamed request gets :class:`Fail` with the same status instead.
    """

    after_chunks: int
    status: int = 529


@dataclasses.dataclass(frozen=True)
class Close:
    """Close the connection at once, with no response at all."""


Step = Reply | Fail | Hang | StreamThenFail | StreamThenError | Close


@dataclasses.dataclass(frozen=True)
class ProviderRequest:
    """One request as the provider received it. ``headers`` keys are lower case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any  # the parsed JSON body; None when there was none or it was not JSON


_WORD = re.compile(r"\s*\S+")
#: message/content keys whose string values are the text a model reads (roles, ids, URLs are not)
_TEXT_KEYS = frozenset({"content", "text", "system"})


def words(text: str) -> list[str]:
    """``text`` as word pieces that join back to it (leading spaces kept): one token each."""
    return _WORD.findall(text)


def count_words(value: Any, *, key: str | None = None) -> int:
    """Words in the text parts of a request value: strings under content/text/system keys.

    The same conversation counts the same on either provider (OpenAI's system message and
    Anthropic's ``system`` field, tool results in either shape), so usage survives translation.
    """
    if isinstance(value, str):
        return len(words(value)) if key in _TEXT_KEYS else 0
    if isinstance(value, Mapping):
        return sum(count_words(v, key=k) for k, v in value.items())
    if isinstance(value, list):
        return sum(count_words(v, key=key) for v in value)
    return 0


def plain_text(content: Any) -> str:
    """The text of one message's content: a string, or its text parts / tool results joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [plain_text(part) for part in content]
        return " ".join(p for p in parts if p)
    if isinstance(content, Mapping):
        if isinstance(content.get("text"), str):
            return str(content["text"])
        if "content" in content:  # Anthropic tool_result block
            return plain_text(content["content"])
    return ""


def echo_text(last_user_text: str) -> str:
    """The default answer: ``echo: <the last user-side message's text>``."""
    return f"echo: {last_user_text}".strip()


def apply_limits(
    text: str, max_tokens: int | None, stop_sequences: Sequence[str]
) -> tuple[str, str | None, str | None]:
    """Cut ``text`` as a model would: at the first stop sequence, or after ``max_tokens`` words.

    Returns ``(text, why, sequence)`` where ``why`` is ``"stop_sequence"``, ``"max_tokens"`` or
    None (ran to its end).
    """
    cut = [(text.find(s), s) for s in stop_sequences if s and s in text]
    if cut:
        at, sequence = min(cut)
        text, why, hit = text[:at], "stop_sequence", sequence
    else:
        why, hit = None, None
    pieces = words(text)
    if max_tokens is not None and len(pieces) > max_tokens:
        return "".join(pieces[:max_tokens]), "max_tokens", None
    return text, why, hit


def split_json(text: str, size: int = 8) -> list[str]:
    """Tool-call arguments in fragments, as providers stream them (never valid JSON alone)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


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
        self._serial = 0
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

    def serial(self) -> int:
        self._serial += 1
        return self._serial

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
        started.result(timeout=THREAD_START_TIMEOUT)
        return self.server

    def __exit__(self, *exc: object) -> None:
        stopped = asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop)
        try:
            stopped.result(timeout=THREAD_START_TIMEOUT)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=THREAD_START_TIMEOUT)
            if not self._thread.is_alive():
                self._loop.close()


def make_id(prefix: str) -> str:
    """A unique id in the provider's style: ``prefix`` then 24 random hex digits."""
    return f"{prefix}{secrets.token_hex(12)}"


__all__ = [
    "Close",
    "Fail",
    "FakeProvider",
    "Hang",
    "ProviderRequest",
    "Reply",
    "ServedInThread",
    "Step",
    "StreamThenError",
    "StreamFrames",
    "StreamThenFail",
    "ToolCall",
    "make_id",
    "refused_url",
    "sse",
]
