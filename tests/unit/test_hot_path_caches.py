"""What the HTTP/1 hot path's caches (X-Forwarded-For lines, routes by Host, Connection values,
the deadline wheel's kept bucket) must not change: the bytes forwarded, the memory a hostile
peer can make them hold, and a deadline firing."""

from __future__ import annotations

import heapq
import random
import tracemalloc
from collections.abc import Callable

import pytest

from sidecar import http1
from sidecar.adapters.http_adapter import _head_writer
from sidecar.config.models import HttpListenerConfig
from sidecar.errors import SidecarError
from sidecar.exchange import Exchange, Headers
from sidecar.listeners.http import HttpListener
from sidecar.listeners.http_connection import HttpConnection
from sidecar.resilience.deadlines import Deadline, DeadlineWheel
from sidecar.routing import ExplicitRoute, Route, RouteTable
from sidecar.telemetry.metrics import Metrics


async def _nothing(ex: Exchange) -> None:
    raise AssertionError("never called")


def test_an_empty_forwarded_for_header_gets_only_the_app_address() -> None:
    """An app's empty ``X-Forwarded-For`` line is forwarded as the app's address alone, not as
    a list whose first entry is empty."""
    ex = Exchange("GET", "/", Headers([("x-forwarded-for", "")]), client="127.0.0.1:5555")
    head = _head_writer("", "up:80").write(ex, 0)
    assert b"x-forwarded-for: 127.0.0.1\r\n" in head


def test_the_header_lines_kept_for_the_next_call_are_never_another_calls() -> None:
    """An upstream's head writer writes the last call's header lines again only for headers
    equal to that call's: a call with other headers, or the same headers changed in place (a
    filter adding one before a retry), gets its own lines."""
    write = _head_writer("", "up:80").write

    def fresh(ex: Exchange) -> bytes:
        return _head_writer("", "up:80").write(ex, 0)

    headers = Headers([("accept", "*/*"), ("x-forwarded-for", "10.0.0.1")])
    ex = Exchange("GET", "/", headers, client="127.0.0.1:5555")
    assert write(ex, 0) == fresh(ex)
    headers.add("authorization", "Bearer t")  # the same list, one pair longer
    assert b"authorization: Bearer t\r\n" in write(ex, 0)
    headers.items()[0] = ("accept", "text/html")  # the same list, one pair replaced
    assert write(ex, 0) == fresh(ex) and b"accept: text/html\r\n" in fresh(ex)
    other = Exchange("GET", "/", Headers([("accept", "*/*")]), client="127.0.0.1:5555")
    assert write(other, 0) == fresh(other)
    same = Exchange("GET", "/", Headers([("accept", "*/*")]), client="127.0.0.1:5555")
    assert write(same, 0) == fresh(same)


def test_distinct_long_host_values_do_not_stay_in_memory() -> None:
    """Requests with long, ever-different ``Host`` values (a hostile app or peer) leave no
    megabytes behind in the route table."""
    table = RouteTable({"payments": Route("payments", "payments", _nothing)})
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200):
            table.resolve("/payments/x", f"h{i:03d}" + "a" * 50_000, Headers())
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1_000_000


def test_distinct_long_connection_values_do_not_stay_in_memory() -> None:
    """Long, ever-different ``Connection`` values (a hostile app) leave no megabytes behind in
    the table of values seen, and each still names its own headers."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(100):
            value = f"x-{i:03d}-" + "n" * 50_000
            assert value in http1.hop_by_hop_names([value])
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1_000_000


class _Handle:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: _Handle) -> bool:
        return self.when < other.when


class _Loop:
    """Enough of an event loop for the wheel: a clock and timers run by ``advance``."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.timers: list[_Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle(when, callback)
        heapq.heappush(self.timers, handle)
        return handle

    def advance(self, to: float) -> None:
        while self.timers and self.timers[0].when <= to:
            handle = heapq.heappop(self.timers)
            if not handle.cancelled:
                self.now = handle.when
                handle.callback()
        self.now = to


class _Task:
    def __init__(self) -> None:
        self.cancelled = 0

    def cancel(self) -> None:
        self.cancelled += 1


def test_a_deadline_fires_on_a_new_loop_sharing_the_last_calls_bucket() -> None:
    """A wheel that outlives its event loop (a filter reused by the next loop) still cancels
    a call that overruns its deadline, even when that call lands in the bucket the last call
    on the old loop left empty."""
    wheel = DeadlineWheel()
    first, second = _Loop(100.0), _Loop(100.0)
    ended_in_time = wheel.add(first, _Task(), 100.05)  # type: ignore[arg-type]
    wheel.remove(ended_in_time)
    late = _Task()
    wheel.add(second, late, 100.05)  # type: ignore[arg-type]
    second.advance(101.0)
    assert late.cancelled == 1


def test_a_call_in_the_bucket_of_a_call_whose_deadline_fired_is_still_cut() -> None:
    """The wheel holds the bucket of the last call for the next one; once that bucket fired,
    a call whose deadline falls in it again (one that was already past as it came) gets a
    bucket of its own and is cancelled, and the fired call leaving later takes nothing with
    it."""
    wheel = DeadlineWheel()
    loop = _Loop(100.0)
    first = _Task()
    fired = wheel.add(loop, first, 100.05)  # type: ignore[arg-type]
    loop.advance(100.2)
    assert first.cancelled == 1
    late = _Task()
    wheel.add(loop, late, 100.05)  # type: ignore[arg-type]
    assert wheel.remove(fired) is True  # after the next call joined the same slot
    loop.advance(100.4)
    assert late.cancelled == 1
    other = _Task()
    wheel.add(loop, other, 100.55)  # type: ignore[arg-type]
    loop.advance(101.0)
    assert other.cancelled == 1
    assert len(wheel) == 0


@pytest.mark.parametrize("seed", range(8))
def test_the_wheel_cuts_exactly_the_calls_still_running_past_their_bucket(seed: int) -> None:
    """Calls joining and leaving at random, some with deadlines already past, the clock moving
    in steps shorter and longer than a bucket: after each step every call still registered
    whose bucket boundary has passed was cancelled once, no other call was, and a call that
    leaves is told whether it was."""
    rng = random.Random(seed)
    tick = 0.005
    wheel = DeadlineWheel(tick)
    loop = _Loop(100.0)
    live: list[tuple[_Task, Deadline, float]] = []  # task, entry, the time its bucket ends
    for _ in range(3000):
        op = rng.random()
        if op < 0.5:
            task = _Task()
            deadline = loop.now + rng.uniform(-0.01, 0.03)
            entry = wheel.add(loop, task, deadline)  # type: ignore[arg-type]
            live.append((task, entry, (int(deadline / tick) + 1) * tick))
        elif op < 0.8 and live:
            task, entry, _ = live.pop(rng.randrange(len(live)))
            assert wheel.remove(entry) is (task.cancelled == 1)
        else:
            loop.advance(loop.now + rng.choice([0.0005, 0.002, 0.006, 0.02]))
            for task, _, ends in live:
                if ends <= loop.now - 1e-9:
                    assert task.cancelled == 1, (ends, loop.now)
                elif ends > loop.now + 1e-6:
                    assert task.cancelled == 0, (ends, loop.now)
    assert len(wheel) == sum(1 for task, _, _ in live if not task.cancelled)
    for _, entry, _ in live:
        wheel.remove(entry)
    assert len(wheel) == 0 and wheel.buckets <= 1


@pytest.mark.parametrize(
    "paths",
    [
        ["/up/a//b/./c", "/up/a//b/./c", "/up/a/b/c"],
        ["/up/a\\b", "/up/a\\b"],  # refused each time, never remembered as routed
        ["/up/x", "/up/%2e%2e/x", "/up/%2e%2e/x", "/up/x"],
    ],
)
async def test_an_app_connection_routes_each_request_by_its_own_path(paths: list[str]) -> None:
    """A connection remembers the last path it normalised: a request with the same path gets
    the same answer, one with another path its own, and a refused path is refused again."""
    table = RouteTable({"up": Route("up", "up", _nothing)})
    conn = HttpConnection(HttpListener(HttpListenerConfig(), table, Metrics()))
    fresh = HttpConnection(HttpListener(HttpListenerConfig(), table, Metrics()))

    def routed(c: HttpConnection, path: str) -> str | SidecarError:
        ex = Exchange("GET", path, Headers([("host", "x")]))
        try:
            c.route(ex)
        except SidecarError as e:
            return e
        return ex.path

    for path in paths:
        got, want = routed(conn, path), routed(fresh, path)
        fresh.last_path = "\n"  # the reference never remembers
        if isinstance(want, SidecarError):
            assert type(got) is type(want) and str(got) == str(want)
        else:
            assert got == want


async def test_the_route_kept_for_the_next_call_is_never_another_calls() -> None:
    """A connection keeps its last call's route for a call with the same path and Host, and
    only then: another Host, a reloaded route table, or routes that match header values get
    the route the table gives."""
    a, b, c = (Route(name, name, _nothing) for name in ("a", "b", "c"))
    listener = HttpListener(HttpListenerConfig(), RouteTable({"a": a, "b": b}), Metrics())
    conn = HttpConnection(listener)

    def route_of(host: str | None, headers: list[tuple[str, str]] | None = None) -> str:
        ex = Exchange("GET", "/a/x", Headers(headers or []))
        ex.host = host
        conn.route(ex)
        return ex.route

    assert [route_of(None), route_of(None)] == ["a", "a"]
    assert [route_of("b"), route_of(None), route_of("b:8080")] == ["b", "a", "b"]
    listener.routes = RouteTable({"a": Route("a-reloaded", "a", _nothing)})  # a reload
    assert route_of(None) == "a-reloaded"
    by_header = ExplicitRoute(c, "/a", None, (("x-to", "c"),), None)
    listener.routes = RouteTable({"a": a}, [by_header])
    calls = [None, [("x-to", "c")], None, [("x-to", "c")], [("x-to", "c")]]
    assert [route_of(None, h) for h in calls] == ["a", "c", "a", "c", "c"]


async def test_a_connection_keeps_no_long_path_for_its_route() -> None:
    """An app connection that routed a long path (up to the request target's limit) does not
    hold it afterwards: idle connections that each routed a hostile 8 KB path leave no
    megabytes behind."""
    listener = HttpListener(
        HttpListenerConfig(), RouteTable({"up": Route("up", "up", _nothing)}), Metrics()
    )
    conns = [HttpConnection(listener) for _ in range(200)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, conn in enumerate(conns):
            ex = Exchange("GET", f"/up/{i:03d}" + "a" * 8_000, Headers())
            conn.route(ex)
            assert ex.upstream == "up"
            del ex
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1_000_000
