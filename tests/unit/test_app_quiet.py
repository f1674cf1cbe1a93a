"""The wait for the app to go quiet on SIGTERM, and the ``shutdown.app_quiet_period`` key."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sidecar.app_quiet import AppActivity, wait_for_quiet_app
from sidecar.config import SidecarConfig, parse_config
from sidecar.config.changes import split_changes
from sidecar.errors import ConfigError

QUIET = 0.2  # seconds: short, the waits below are real loop time


class FakeListener:
    """An egress listener whose app activity the test sets."""

    def __init__(self, connections: int = 0, in_flight: int = 0) -> None:
        self.connections, self.in_flight, self.began = connections, in_flight, 0

    def app_activity(self) -> AppActivity:
        return AppActivity(self.connections, self.in_flight, self.began)


def config(text: str) -> SidecarConfig:
    return parse_config(text, "sidecar.yaml", {})


async def timed_wait(listeners: list[FakeListener], grace: float) -> tuple[bool, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    quiet = await wait_for_quiet_app(listeners, QUIET, start + grace)
    return quiet, loop.time() - start


async def test_an_app_quiet_at_the_signal_is_done_after_the_quiet_period() -> None:
    """A native sidecar's app is gone when SIGTERM comes: one quiet period, then the drain."""
    quiet, took = await timed_wait([FakeListener(), FakeListener()], grace=5.0)
    assert quiet
    assert QUIET <= took < QUIET + 0.5


async def test_idle_connections_do_not_hold_the_wait() -> None:
    """An app's idle keep-alive pool or gRPC channel is no activity: it is quiet all the same."""
    quiet, took = await timed_wait([FakeListener(connections=3)], grace=5.0)
    assert quiet and took < QUIET + 0.5


async def test_each_new_call_restarts_the_quiet_clock() -> None:
    """Calls that begin and end between two looks still count: the quiet period runs from the
    app's last call, not from the signal."""
    listener = FakeListener()
    loop = asyncio.get_running_loop()
    last_call = 0.0

    async def app() -> None:
        nonlocal last_call
        for _ in range(6):
            listener.began += 1  # a whole call, never seen in flight
            last_call = loop.time()
            await asyncio.sleep(QUIET / 2)  # the app's pace

    calling = asyncio.create_task(app())
    start = loop.time()
    quiet = await wait_for_quiet_app([listener], QUIET, start + 5.0)
    ended = loop.time()
    await calling
    assert quiet
    assert ended - last_call >= QUIET
    assert ended - start >= 5 * QUIET / 2 + QUIET


async def test_a_call_in_flight_holds_the_wait_until_it_ends() -> None:
    """The quiet period starts when the app's last call in flight ends."""
    listener = FakeListener(connections=1, in_flight=1)
    loop = asyncio.get_running_loop()
    ended_at: list[float] = []

    def call_ends() -> None:
        listener.in_flight = 0
        ended_at.append(loop.time())

    loop.call_later(0.3, call_ends)
    quiet = await wait_for_quiet_app([listener], QUIET, loop.time() + 5.0)
    assert quiet and loop.time() - ended_at[0] >= QUIET


async def test_an_app_that_never_goes_quiet_is_bounded_by_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A call that never ends cannot hold the shutdown past the grace; the log says so."""
    with caplog.at_level(logging.INFO, logger="sidecar"):
        quiet, took = await timed_wait([FakeListener(connections=1, in_flight=1)], grace=0.3)
    assert not quiet
    assert 0.3 <= took < 0.8
    assert [r.getMessage() for r in caplog.records] == [
        "waiting for the app to go quiet",
        "grace ended",
    ]
    ended = caplog.records[-1]
    assert (ended.fields["connections"], ended.fields["in_flight"]) == (1, 1)  # type: ignore[attr-defined]


def test_app_quiet_period_defaults_to_2s_and_0_turns_it_off() -> None:
    """The default suits the classic layout; 0 is today's drain at once."""
    assert config("{}").shutdown.app_quiet_period == 2.0
    assert config("shutdown: {app_quiet_period: 0}").shutdown.app_quiet_period == 0.0
    assert config("shutdown: {app_quiet_period: 500ms}").shutdown.app_quiet_period == 0.5


def test_a_short_grace_without_an_explicit_quiet_period_drains_at_once() -> None:
    """A drain_timeout of 2 s or less written before this key existed keeps its meaning."""
    assert config("shutdown: {drain_timeout: 2s}").shutdown.app_quiet_period == 0.0
    assert config("shutdown: {drain_timeout: 0s}").shutdown.app_quiet_period == 0.0
    assert config("shutdown: {drain_timeout: 3s}").shutdown.app_quiet_period == 2.0


@pytest.mark.parametrize(
    "shutdown",
    ["{drain_timeout: 5s, app_quiet_period: 5s}", "{drain_timeout: 1s, app_quiet_period: 2s}"],
)
def test_a_quiet_period_as_long_as_the_grace_is_refused(shutdown: str) -> None:
    """The grace bounds the whole shutdown: a quiet period that fills it is a mistake."""
    with pytest.raises(ConfigError) as e:
        config(f"shutdown: {shutdown}")
    (problem,) = e.value.problems
    assert problem.path == "shutdown"
    assert "must be shorter than drain_timeout" in problem.reason


def test_the_shutdown_keys_are_reloadable() -> None:
    """Both are read when SIGTERM comes, so a reload changes the next shutdown."""
    old = config("shutdown: {drain_timeout: 20s}")
    new = config("shutdown: {drain_timeout: 30s, app_quiet_period: 5s}")
    effective, restart = split_changes(old, new)
    assert restart == []
    assert (effective.shutdown.drain_timeout, effective.shutdown.app_quiet_period) == (30.0, 5.0)
