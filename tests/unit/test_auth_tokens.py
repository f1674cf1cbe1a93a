"""The token cache under a controlled clock: caching, early refresh, single-flight, IdP failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest

from sidecar.auth.tokens import FORCED_REFRESH_INTERVAL, TokenFetchError, TokenSource
from sidecar.errors import CredentialsUnavailable
from sidecar.testing import async_wait_until


class FakeClock:
    """Monotonic seconds that move only when the test says; ``sleep`` wakes on ``advance``."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + delay, fut))
        await fut

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for entry in list(self._sleepers):
            when, fut = entry
            if when <= self.now:
                self._sleepers.remove(entry)
                if not fut.done():
                    fut.set_result(None)


class Tasks:
    """Owns the tasks a source spawns, as the broker does."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class FakeIdP:
    """A fetch function that counts calls, and can fail or hold its answer."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.expires_in: float | None = 100.0
        self.gate: asyncio.Event | None = None

    async def fetch(self) -> tuple[str, float | None]:
        self.calls += 1
        n = self.calls
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise TokenFetchError("rejected", "the token endpoint answered 500")
        return f"tok-{n}", self.expires_in


@pytest.fixture
async def env() -> AsyncIterator[tuple[FakeClock, Tasks, FakeIdP]]:
    tasks = Tasks()
    yield FakeClock(), tasks, FakeIdP()
    await tasks.aclose()


def make_source(
    env: tuple[FakeClock, Tasks, FakeIdP], rand: float = 0.0, results: list[str] | None = None
) -> TokenSource:
    clock, tasks, idp = env
    return TokenSource(
        idp.fetch,
        name="pay",
        spawn=tasks.spawn,
        clock=clock,
        sleep=clock.sleep,
        rand=lambda: rand,
        backoff=(1.0, 8.0),
        on_result=(results.append if results is not None else lambda r: None),
    )


async def turns(n: int = 20) -> None:
    """Let the loop run what is ready (spawned tasks, resolved sleeps) without any time passing."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_many_calls_share_one_fetch(env: tuple[FakeClock, Tasks, FakeIdP]) -> None:
    """N calls cost one token fetch: the token is cached while valid."""
    src = make_source(env)
    tokens = [await src.get() for _ in range(50)]
    assert {t.value for t in tokens} == {"tok-1"}
    assert env[2].calls == 1


async def test_concurrent_calls_wait_for_one_fetch(env: tuple[FakeClock, Tasks, FakeIdP]) -> None:
    """200 calls arriving while there is no token cause a single fetch, and all get its token."""
    _, _, idp = env
    idp.gate = asyncio.Event()
    src = make_source(env)
    waiting = [asyncio.create_task(src.get()) for _ in range(200)]
    await turns()
    assert idp.calls == 1
    idp.gate.set()
    tokens = await asyncio.gather(*waiting)
    assert {t.value for t in tokens} == {"tok-1"} and idp.calls == 1


async def test_token_is_renewed_early_in_the_background(
    env: tuple[FakeClock, Tasks, FakeIdP],
) -> None:
    """At half its lifetime (rand 0) the token is renewed without any call waiting for it."""
    clock, _, idp = env
    src = make_source(env)
    assert (await src.get()).value == "tok-1"
    clock.advance(49.9)
    await turns()
    assert idp.calls == 1
    idp.gate = asyncio.Event()  # the renewal is slow: calls meanwhile take the valid token
    clock.advance(0.2)
    await async_wait_until(lambda: idp.calls == 2, limit=2)
    assert (await asyncio.wait_for(src.get(), 1)).value == "tok-1"
    idp.gate.set()
    await async_wait_until(lambda: src.token is not None and src.token.value == "tok-2", limit=2)
    assert (await src.get()).value == "tok-2"


@pytest.mark.parametrize(("rand", "fraction"), [(0.0, 0.5), (0.5, 0.65), (1.0, 0.8)])
async def test_refresh_point_is_jittered_within_50_to_80_percent(
    env: tuple[FakeClock, Tasks, FakeIdP], rand: float, fraction: float
) -> None:
    """Replicas renew at different points of 50-80% of the lifetime, never all at once."""
    clock = env[0]
    token = await make_source(env, rand=rand).get()
    assert token.refresh_at == pytest.approx(clock.now + 100 * fraction)
    assert token.expires_at == pytest.approx(clock.now + 90)  # 10% margin before the IdP's end


async def test_idp_down_with_a_valid_token_keeps_serving(
    env: tuple[FakeClock, Tasks, FakeIdP],
) -> None:
    """While the IdP fails, calls keep the still-valid token; renewals retry with backoff."""
    clock, _, idp = env
    results: list[str] = []
    src = make_source(env, results=results)
    await src.get()
    idp.fail = True
    clock.advance(50)
    await async_wait_until(lambda: idp.calls == 2, limit=2)
    for _ in range(8):  # up to 85 s of the 90 s the token is usable
        assert (await src.get()).value == "tok-1"
        clock.advance(4.3)
        await turns()
    assert idp.calls >= 4  # retried, spaced by the (doubling) backoff
    assert results[0] == "ok" and set(results[1:]) == {"rejected"}


async def test_an_expired_token_is_never_returned_while_the_idp_fails(
    env: tuple[FakeClock, Tasks, FakeIdP],
) -> None:
    """Past its expiry the old token is never handed out: the call gets 503 instead."""
    clock, _, idp = env
    src = make_source(env)
    old = await src.get()
    idp.fail = True
    clock.advance(90.01)
    await turns()
    with pytest.raises(CredentialsUnavailable) as caught:
        await src.get()
    assert caught.value.status == 503 and caught.value.code == "credentials_unavailable"
    assert old.value not in str(caught.value)
    assert "the token endpoint answered 500" in str(caught.value)


async def test_calls_inside_the_backoff_fail_fast_without_asking_the_idp(
    env: tuple[FakeClock, Tasks, FakeIdP],
) -> None:
    """An IdP that just failed is not asked again per call: calls get 503 until the next try."""
    clock, _, idp = env
    idp.fail = True
    src = make_source(env)
    with pytest.raises(CredentialsUnavailable):
        await src.get()
    assert idp.calls == 1
    for _ in range(20):
        with pytest.raises(CredentialsUnavailable, match="next attempt in"):
            await src.get()
    assert idp.calls == 1
    idp.fail = False
    clock.advance(1.0)  # backoff after one failure: at most 1 s (base)
    await async_wait_until(lambda: src.token is not None, limit=2)
    assert (await src.get()).value.startswith("tok-")


async def test_a_failed_fetch_retries_in_the_background_until_the_idp_recovers(
    env: tuple[FakeClock, Tasks, FakeIdP],
) -> None:
    """After an outage the token comes back by itself, before any call needs to ask."""
    clock, _, idp = env
    src = make_source(env)
    await src.get()
    idp.fail = True
    clock.advance(50)
    await async_wait_until(lambda: idp.calls == 2, limit=2)
    idp.fail = False
    clock.advance(8.0)  # past any backoff
    await async_wait_until(lambda: src.token is not None and src.token.value != "tok-1", limit=2)
    assert src.last_error == "the token endpoint answered 500" and src.failed == 1


async def test_a_refused_token_is_renewed_once_for_every_call_that_saw_it(
    env: tuple[FakeClock, Tasks, FakeIdP],
) -> None:
    """Ten calls refused (401) with the same token share one renewal and all get the new one."""
    _, _, idp = env
    src = make_source(env)
    old = await src.get()
    idp.gate = asyncio.Event()
    renewals = [asyncio.create_task(src.renew(old)) for _ in range(10)]
    await turns()
    assert idp.calls == 2
    idp.gate.set()
    new = await asyncio.gather(*renewals)
    assert {t.value for t in new if t is not None} == {"tok-2"} and None not in new
    assert idp.calls == 2


async def test_renewals_after_refusals_are_throttled(env: tuple[FakeClock, Tasks, FakeIdP]) -> None:
    """An upstream that refuses every token cannot turn each call into an IdP call."""
    clock, _, idp = env
    src = make_source(env)
    first = await src.get()
    second = await src.renew(first)
    assert second is not None and second.value == "tok-2"
    assert await src.renew(second) is None  # within the interval: the 401 goes back to the app
    assert idp.calls == 2
    clock.advance(FORCED_REFRESH_INTERVAL + 0.01)
    third = await src.renew(second)
    assert third is not None and third.value == "tok-3"


async def test_renewal_fails_quietly_when_the_idp_is_down(
    env: tuple[FakeClock, Tasks, FakeIdP],
) -> None:
    """A 401 with the IdP down leaves the still-valid token in place for the other calls."""
    _, _, idp = env
    src = make_source(env)
    old = await src.get()
    idp.fail = True
    assert await src.renew(old) is None
    assert (await src.get()) is old


async def test_an_idle_source_stops_renewing(env: tuple[FakeClock, Tasks, FakeIdP]) -> None:
    """An upstream nobody calls (or a reload removed) stops costing IdP calls within a lifetime."""
    clock, _, idp = env
    src = make_source(env)
    await src.get()
    for _ in range(6):
        clock.advance(50.1)
        await turns()
    calls = idp.calls
    assert calls <= 3
    for _ in range(4):
        clock.advance(50.1)
        await turns()
    assert idp.calls == calls and src._refresher is None
    assert (await src.get()).value.startswith("tok-")  # the next call fetches again if needed


async def test_missing_expires_in_means_the_default_lifetime(
    env: tuple[FakeClock, Tasks, FakeIdP],
) -> None:
    """An IdP that says nothing about lifetime gets the default (5 min), not forever."""
    clock, _, idp = env
    idp.expires_in = None
    token = await make_source(env).get()
    assert token.lifetime == 300.0 and token.expires_at == pytest.approx(clock.now + 270)


async def test_a_tiny_lifetime_does_not_become_a_fetch_loop(
    env: tuple[FakeClock, Tasks, FakeIdP],
) -> None:
    """An IdP granting 10 ms tokens is asked at most every 0.25 s by the background task."""
    clock, _, idp = env
    idp.expires_in = 0.01
    src = make_source(env)
    await src.get()
    clock.advance(0.2)
    await turns(50)
    assert idp.calls == 1


async def test_an_unexpected_fetch_error_is_a_failure_not_a_crash(
    env: tuple[FakeClock, Tasks, FakeIdP],
) -> None:
    """A bug or untranslated library error in a fetch becomes a 503 naming only its type."""

    async def broken() -> tuple[str, float | None]:
        raise RuntimeError("boom with details")

    clock, tasks, _ = env
    src = TokenSource(broken, name="pay", spawn=tasks.spawn, clock=clock, sleep=clock.sleep)
    with pytest.raises(CredentialsUnavailable, match="unexpected error: RuntimeError"):
        await src.get()
    assert src.last_error == "unexpected error: RuntimeError"


async def test_a_call_that_goes_away_does_not_cancel_the_fetch_others_wait_for(
    env: tuple[FakeClock, Tasks, FakeIdP],
) -> None:
    """A call cut by its deadline leaves the single in-flight fetch running for the rest."""
    _, _, idp = env
    idp.gate = asyncio.Event()
    src = make_source(env)
    impatient = asyncio.create_task(src.get())
    patient = asyncio.create_task(src.get())
    await turns()
    impatient.cancel()
    await turns()
    idp.gate.set()
    assert (await patient).value == "tok-1" and idp.calls == 1
