"""What the "nothing lost" SIGKILL tests share, whatever the broker.

Two stories, each told against ``sidecar run`` as a child process:

- :func:`confirmed_before_sigkill`: publishers keep sending while the sidecar is SIGKILLed; the
  caller then checks that every publish answered 204 is in its broker;
- :class:`MidBatchKill`: an app that holds the deliveries after the tenth, so a batch is in
  flight when the sidecar is SIGKILLed; the sidecar is restarted, every message must reach the
  app at least once (those in flight again), and the dead-letter topic must hold exactly the
  poison messages. The caller publishes the batch and asks its broker whether anything is left
  unacknowledged. A broker that shows no unacknowledged count while a consumer holds its
  messages (RabbitMQ, MQTT) is asked after a :func:`sentinel` went through a restarted
  sidecar that delivers one message at a time, and was stopped.

Only how to look into a broker differs from test to test; that stays in each test module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from typing import Any

import httpx
from aiohttp import web
from pubsub_app import until, until_async

from sidecar.testing import FakeUpstream, SidecarProcess

#: messages in a batch, and which of them the app always fails (500: retried, then dead-lettered)
MESSAGES = 40
POISON = frozenset({3, 17, 23, 38})
#: deliveries the app answers at once before it starts holding them
ANSWERED_FIRST = 10
#: bound on a sidecar's start-up, and on every wait of these tests
READY_WAIT = 30.0
WAIT = 30.0


def only_pubsub(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every other installed plugin disabled: the child runs the built-ins
    and this plugin, as the in-process tests do (``plugins=[sidecar_pubsub]``)."""
    others = sorted({e.name for e in entry_points(group="sidecar")} - {"pubsub"})
    plugins = {**config.get("plugins", {}), "disabled": others}
    return {**config, "plugins": plugins}


async def started(config: dict[str, Any]) -> SidecarProcess:
    """``sidecar run`` as a child, started without blocking the app served by this loop.

    Its SIGTERM drains at once: a test stops it once everything settled, and the wait for the
    app to go quiet (the core's lifecycle tests') would add its 2 s default to every stop."""
    config = {**config, "shutdown": {"app_quiet_period": "0s"}}
    child = SidecarProcess(only_pubsub(config), ready_timeout=READY_WAIT)
    return await asyncio.to_thread(child.start)


async def confirmed_before_sigkill(
    config: dict[str, Any], topic: str, enough: int = 100, publishers: int = 8
) -> list[str]:
    """The ``ce-id`` of every publish answered 204 by a sidecar SIGKILLed once ``enough`` were,
    while ``publishers`` clients keep sending to ``topic`` of upstream ``events``."""
    proc = await started(config)
    confirmed: list[str] = []
    cut_off = 0

    async def publisher(client: httpx.AsyncClient, worker: int) -> None:
        nonlocal cut_off
        for n in range(1_000_000):
            try:
                r = await client.post(
                    f"{proc.http_url}/events/{topic}", content=f"{worker}-{n}".encode()
                )
            except httpx.TransportError:
                cut_off += 1
                return  # the sidecar is gone
            assert r.status_code == 204, r.text
            confirmed.append(r.headers["ce-id"])

    try:
        async with httpx.AsyncClient(timeout=10) as client:
            workers = [asyncio.create_task(publisher(client, w)) for w in range(publishers)]
            await until(lambda: len(confirmed) >= enough, f"{enough} confirmed publishes")
            await asyncio.to_thread(proc.kill)  # SIGKILL, with publishes in flight
            await asyncio.wait_for(asyncio.gather(*workers), 15)
    finally:
        proc.kill()
    assert cut_off == publishers  # every publisher saw the sidecar die mid-stream
    return confirmed


def sentinel(name: str) -> dict[str, Any]:
    """An event published after the batch: a sidecar delivering one message at a time has
    settled (acknowledged) every earlier message of the topic by the time the app sees it."""
    return {"specversion": "1.0", "id": name, "source": "/test", "type": "ok"}


def batch() -> list[dict[str, Any]]:
    """The batch as structured CloudEvents: ``m0``... of type ``ok``, or ``poison``."""
    return [
        {
            "specversion": "1.0",
            "id": f"m{n}",
            "source": "/test",
            "type": "poison" if n in POISON else "ok",
        }
        for n in range(MESSAGES)
    ]


class MidBatchKill:
    """The app of a mid-batch SIGKILL and the sidecar it is delivered by.

    ``async with MidBatchKill() as run``: :attr:`app_url` takes the deliveries; then
    :meth:`start`, :meth:`kill_while_held`, :meth:`start` again, and the checks. The sidecar
    is SIGKILLed on the way out, whatever happened.
    """

    def __init__(self) -> None:
        #: the ``ce-id`` of every delivery the app saw, in order, both runs
        self.delivered: list[str] = []
        #: what the app held, unanswered, when the first sidecar was killed
        self.held: set[str] = set()
        self._holding = True
        self._release = asyncio.Event()
        self._app = FakeUpstream(self._answer)
        self.proc: SidecarProcess | None = None

    async def __aenter__(self) -> MidBatchKill:
        await self._app.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            await asyncio.to_thread(self.proc.kill)
        self._release.set()
        await self._app.__aexit__(None, None, None)

    @property
    def app_url(self) -> str:
        return str(self._app.url)

    async def _answer(self, request: web.Request) -> web.Response:
        self.delivered.append(request.headers["ce-id"])
        if self._holding and len(self.delivered) > ANSWERED_FIRST:
            await asyncio.wait_for(self._release.wait(), WAIT)  # in flight at the SIGKILL
        return web.Response(status=500 if request.headers["ce-type"] == "poison" else 200)

    async def start(self, config: dict[str, Any]) -> SidecarProcess:
        self.proc = await started(config)
        return self.proc

    async def kill_while_held(self) -> None:
        """Wait for deliveries held in flight, then SIGKILL the sidecar; the app answers
        again from now on."""
        assert self.proc is not None
        await until(lambda: len(self.delivered) > ANSWERED_FIRST, "a delivery held", WAIT)
        self.held = set(self.delivered[ANSWERED_FIRST:])
        await asyncio.to_thread(self.proc.kill)
        self._holding = False
        self._release.set()

    async def stop(self) -> None:
        """SIGTERM the sidecar and wait for it to exit (what it acknowledged reaches the
        broker before its connections close)."""
        assert self.proc is not None
        assert await asyncio.to_thread(self.proc.terminate) == 0

    async def until_every_message_delivered(self, extra: frozenset[str] = frozenset()) -> None:
        wanted = {f"m{n}" for n in range(MESSAGES)} | extra
        await until(lambda: wanted <= set(self.delivered), "every message delivered", WAIT)

    async def until_settled(self, probe: Callable[[], Awaitable[bool]], what: str) -> None:
        """Poll the broker (``probe``) until nothing of the batch is left unacknowledged."""
        await until_async(probe, what, WAIT)

    async def check_dead_letters(self, read: Callable[[], Awaitable[set[str]]]) -> None:
        """The dead-letter topic (``read``: the ids in it so far) ends holding exactly the
        poison messages (once each or more: at-least-once)."""
        poison = {f"m{n}" for n in POISON}
        seen: set[str] = set()

        async def all_there() -> bool:
            seen.update(await read())
            return poison <= seen

        await until_async(all_there, "the poison messages dead-lettered", WAIT)
        assert seen == poison

    def check_held_delivered_again(self) -> None:
        """What the app held at the kill was in flight, and was delivered again."""
        assert self.held  # the kill came with deliveries in flight
        assert all(self.delivered.count(i) >= 2 for i in self.held), self.held
