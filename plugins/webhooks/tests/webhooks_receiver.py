"""A webhook receiver for the tests: a real aiohttp server on 127.0.0.1 that records each
delivery and answers from a script (statuses, ``Retry-After``, hanging, holding until released).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

#: an answer: a status, or "hang" (never answers: the sender's timeout ends it)
Answer = int | str


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """``await Receiver(...).start()``; ``url``; ``received``; ``await wait_for(n)``."""

    def __init__(
        self,
        script: list[Answer] | None = None,
        *,
        default: Answer = 200,
        headers: dict[str, str] | None = None,
        hold: bool = False,
    ) -> None:
        self.script: deque[Answer] = deque(script or [])
        self.default = default
        self.answer_headers = headers or {}
        #: while set, each request waits for ``release()`` before it is answered
        self.hold = hold
        self._released = asyncio.Semaphore(0)
        self.received: list[Received] = []
        #: (webhook-id, status) of each answer sent, in order
        self.answered: list[tuple[str, int]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._changed = asyncio.Condition()
        self._hanging = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hooks"
        return self

    async def close(self) -> None:
        self._hanging.set()
        self.release(10_000)
        if self._runner is not None:
            await self._runner.cleanup()

    def delivered_ids(self) -> set[str]:
        """The webhook ids answered with a 2xx."""
        return {msg_id for msg_id, status in self.answered if 200 <= status < 300}

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self._released.release()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            async with self._changed:
                self.received.append(
                    Received({k.lower(): v for k, v in request.headers.items()}, body)
                )
                self._changed.notify_all()
            if self.hold:
                await self._released.acquire()
            answer = self.script.popleft() if self.script else self.default
            if answer == "hang":
                await self._hanging.wait()
                answer = 503
            self.answered.append((request.headers.get("webhook-id", ""), int(answer)))
            return web.Response(status=int(answer), headers=self.answer_headers)
        finally:
            self.in_flight -= 1

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        """The first ``count`` deliveries, once they arrived (TimeoutError past ``within`` s)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.received) >= count)
        return self.received[:count]


async def wait_until(predicate: object, within: float = 10.0, what: str = "") -> None:
    """Poll ``predicate()`` (sync or async) every 20 ms until true; bounded by ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {within}s: {what}")
        await asyncio.sleep(0.02)
