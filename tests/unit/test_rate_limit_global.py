"""Global limits without a server: the backend guard (budget, fail open/closed, outages), the
global_rate_limit filter over a backend, the local backend, config checks and the plugin hook."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar import hookimpl
from sidecar.config import parse_config
from sidecar.config.policies import RateLimitBackendConfig
from sidecar.errors import ConfigError, RateLimited, RateLimitUnavailable, RegistryConflict
from sidecar.filters import global_rate_limit
from sidecar.ratelimit import Decision, Limit, RateLimitBackend, RateLimitBackendRegistry
from sidecar.ratelimit.guard import GuardedBackend
from sidecar.ratelimit.live import RESOURCE, LiveBackends
from sidecar.ratelimit.local_backend import LocalBackend
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import isolated_plugin_host, make_exchange, make_route_context, responder


class ScriptedBackend(RateLimitBackend):
    """Answers as the test says: a decision, an exception, or never."""

    def __init__(self, name: str = "b", config: RateLimitBackendConfig | None = None) -> None:
        super().__init__(name, config or RateLimitBackendConfig(type="scripted", timeout=0.01))
        self.answer: Decision | BaseException | None = Decision(True, 3)
        self.calls: list[tuple[str, Limit]] = []
        self.gate = asyncio.Event()

    async def decide(self, key: str, limit: Limit) -> Decision:
        self.calls.append((key, limit))
        answer = self.answer
        if answer is None:
            await asyncio.Event().wait()  # never answers: only the budget ends this
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, Decision)
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """What sidecar.ratelimit logged during the test."""
    got: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = got.append  # type: ignore[method-assign]
    logger = logging.getLogger("sidecar.ratelimit")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield got
    logger.removeHandler(handler)
    logger.setLevel(old)


def errors(metrics: Metrics, backend: str = "b") -> float:
    value = metrics.registry.get_sample_value(
        "sidecar_ratelimit_backend_errors_total", {"backend": backend}
    )
    return value or 0.0


LIMIT = Limit(10.0, 5)


# --- the guard --------------------------------------------------------------------------------


async def test_a_healthy_backend_decides_and_its_round_trip_is_timed() -> None:
    """The backend's answer is the decision; each one lands in the latency histogram."""
    backend, metrics = ScriptedBackend(), Metrics()
    guard = GuardedBackend(backend, metrics)
    assert await guard.decide("k", LIMIT) == Decision(True, 3)
    count = metrics.registry.get_sample_value(
        "sidecar_ratelimit_backend_duration_seconds_count", {"backend": "b"}
    )
    assert count == 1 and errors(metrics) == 0


async def test_a_backend_that_does_not_answer_is_cut_at_its_budget() -> None:
    """Redis slow: the decision gives up after `timeout`, the call is decided by on_error."""
    backend, metrics = ScriptedBackend(), Metrics()
    backend.answer = None
    guard = GuardedBackend(backend, metrics)
    async with asyncio.timeout(5):  # the budget is 10 ms; this only bounds a broken test
        assert await guard.decide("k", LIMIT) is None
    assert errors(metrics) == 1


async def test_an_outage_is_logged_once_backed_off_probed_and_recovered(
    records: list[logging.LogRecord],
) -> None:
    """Redis down: one warning, no call to it for the retry interval, then one probe; back up:
    one info line, and decisions come from the backend again."""
    backend, metrics, clock = ScriptedBackend(), Metrics(), Clock()
    guard = GuardedBackend(backend, metrics, clock=clock, retry_interval=1.0)
    backend.answer = ConnectionError("refused")
    for _ in range(50):
        assert await guard.decide("k", LIMIT) is None
    assert len(backend.calls) == 1  # the first failure; the 49 others were not sent
    assert errors(metrics) == 50
    clock.now += 1.0
    assert await guard.decide("k", LIMIT) is None  # the probe, still failing
    assert len(backend.calls) == 2
    backend.answer = Decision(False, 0, 0.5)
    assert await guard.decide("k", LIMIT) is None  # backed off again for a second
    clock.now += 1.0
    assert await guard.decide("k", LIMIT) == Decision(False, 0, 0.5)  # recovered
    assert await guard.decide("k", LIMIT) == Decision(False, 0, 0.5)
    assert guard.available
    lines = [(r.levelname, r.getMessage()) for r in records]
    assert lines == [
        (
            "WARNING",
            "rate-limit backend 'b' unavailable: global limits not enforced "
            "(on_error: allow) until it answers again",
        ),
        ("INFO", "rate-limit backend 'b' available again: global limits enforced"),
    ]
    assert records[1].fields["calls_unchecked"] == 52  # type: ignore[attr-defined]


async def test_while_one_probe_is_out_the_other_calls_do_not_wait_for_it() -> None:
    """Only one call pays the budget to find out whether the backend is back."""
    backend, metrics, clock = ScriptedBackend(), Metrics(), Clock()
    guard = GuardedBackend(backend, metrics, clock=clock, retry_interval=1.0)
    backend.answer = ConnectionError("refused")
    await guard.decide("k", LIMIT)
    clock.now += 1.0
    backend.answer = None  # the probe hangs until its budget
    probe = asyncio.create_task(guard.decide("k", LIMIT))
    await asyncio.sleep(0)
    others = [await guard.decide("k", LIMIT) for _ in range(10)]
    assert others == [None] * 10
    assert await probe is None
    assert len(backend.calls) == 2


async def test_a_late_answer_while_others_are_answered_is_not_an_outage(
    records: list[logging.LogRecord],
) -> None:
    """One call over budget while the backend keeps answering (a saturated sidecar): that call
    is decided by on_error, but the backend stays in use and nothing is logged."""

    class SlowOnce(ScriptedBackend):
        async def decide(self, key: str, limit: Limit) -> Decision:
            if key == "slow":
                await asyncio.sleep(0.1)  # past the 10 ms budget
            return await super().decide(key, limit)

    backend, metrics = SlowOnce(), Metrics()
    guard = GuardedBackend(backend, metrics)
    slow = asyncio.create_task(guard.decide("slow", LIMIT))
    await asyncio.sleep(0)
    assert await guard.decide("fast", LIMIT) == Decision(True, 3)  # answered meanwhile
    assert await slow is None
    assert guard.available and records == [] and errors(metrics) == 1
    assert await guard.decide("fast", LIMIT) == Decision(True, 3)


async def test_a_backend_that_cannot_start_begins_in_an_outage(
    records: list[logging.LogRecord],
) -> None:
    """Redis down at start-up does not stop the sidecar; it says so once and fails open."""

    class Unreachable(ScriptedBackend):
        async def start(self) -> None:
            raise ConnectionError("refused")

    backend, clock = Unreachable(), Clock()
    guard = GuardedBackend(backend, Metrics(), clock=clock)
    await guard.start()
    assert not guard.available
    assert await guard.decide("k", LIMIT) is None
    assert backend.calls == []
    assert [r.levelname for r in records] == ["WARNING"]


# --- the filter -------------------------------------------------------------------------------


def global_filter(
    backend: RateLimitBackend, upstream_extra: dict[str, Any] | None = None, **policy: Any
) -> tuple[Any, Metrics, LiveBackends]:
    registry = RateLimitBackendRegistry()
    registry.add("scripted", type(backend))
    metrics = Metrics()
    live = LiveBackends(registry, metrics)
    cfg = backend.config.model_dump()
    ctx = make_route_context(
        {
            "url": "http://x",
            "global_rate_limit": {"backend": backend.name, **policy},
            **(upstream_extra or {}),
        },
        config={"ratelimit_backends": {backend.name: cfg}},
        metrics=metrics,
    )
    # the live backend instance is the test's own object
    live._live[backend.name] = (
        ctx.config.ratelimit_backends[backend.name],
        GuardedBackend(backend, metrics),
    )
    ctx = dataclasses.replace(ctx, resources={RESOURCE: live})
    f = global_rate_limit.factory(ctx)
    assert f is not None
    return f, metrics, live


async def test_refused_globally_is_a_429_with_the_ietf_fields() -> None:
    """A refusal says `global` and when to come back (the backend's wait, rounded up)."""
    backend = ScriptedBackend()
    backend.answer = Decision(False, 0, 1.2)
    f, metrics, _ = global_filter(backend, rate="1000/min", burst=10)
    with pytest.raises(RateLimited) as e:
        await f(make_exchange(), responder(200))
    assert dict(e.value.headers) == {
        "retry-after": "2",
        "ratelimit-policy": '"global";q=1000;w=60',
        "ratelimit": '"global";r=0;t=2',
    }
    assert backend.calls == [("test", Limit(1000 / 60, 10))]
    assert (
        metrics.registry.get_sample_value(
            "sidecar_rate_limited_total",
            {"upstream": "test", "route": "test", "scope": "global", "mode": "reject"},
        )
        == 1
    )


async def test_burst_defaults_to_the_rates_count_per_period() -> None:
    """Without burst, a global 1000/min quota allows its 1000 calls at once, as users expect."""
    backend = ScriptedBackend()
    f, _, _ = global_filter(backend, rate="1000/min")
    await f(make_exchange(), responder(200))
    assert backend.calls[0][1] == Limit(1000 / 60, 1000)


async def test_fail_open_lets_calls_through_when_the_backend_is_down() -> None:
    """on_error: allow (the default): Redis down never stops the app's calls."""
    backend = ScriptedBackend()
    backend.answer = ConnectionError("refused")
    f, metrics, _ = global_filter(backend, rate="1/s")
    for _ in range(3):
        assert (await f(make_exchange(), responder(200))).status == 200
    assert errors(metrics) == 3


async def test_fail_closed_answers_503_ratelimit_unavailable() -> None:
    """on_error: deny: when no decision can be had, the call is refused with 503."""
    backend = ScriptedBackend(
        config=RateLimitBackendConfig(type="scripted", timeout=0.01, on_error="deny")
    )
    backend.answer = ConnectionError("refused")
    f, _, _ = global_filter(backend, rate="1/s")
    with pytest.raises(RateLimitUnavailable) as e:
        await f(make_exchange(), responder(200))
    assert (e.value.status, e.value.code) == (503, "ratelimit_unavailable")


async def test_shadow_counts_refusals_and_never_refuses_not_even_when_down() -> None:
    """shadow: nothing is refused, whatever the backend says or fails to say."""
    backend = ScriptedBackend(
        config=RateLimitBackendConfig(type="scripted", timeout=0.01, on_error="deny")
    )
    backend.answer = Decision(False, 0, 1.0)
    f, metrics, _ = global_filter(backend, rate="1/s", shadow=True)
    assert (await f(make_exchange(), responder(200))).status == 200
    backend.answer = ConnectionError("down")
    assert (await f(make_exchange(), responder(200))).status == 200
    assert (
        metrics.registry.get_sample_value(
            "sidecar_rate_limited_total",
            {"upstream": "test", "route": "test", "scope": "global", "mode": "shadow"},
        )
        == 1
    )


async def test_header_values_never_reach_the_backend_in_clear() -> None:
    """key: header:<name>: the backend sees a hash per value (a key may be a credential)."""
    backend = ScriptedBackend()
    f, _, _ = global_filter(backend, rate="1/s", key="header:x-api-key")
    await f(make_exchange(headers={"x-api-key": "secret-1"}), responder(200))
    await f(make_exchange(headers={"x-api-key": "secret-2"}), responder(200))
    await f(make_exchange(headers={"x-api-key": "secret-1"}), responder(200))
    keys = [k for k, _ in backend.calls]
    assert all(k.startswith("test:") and "secret" not in k for k in keys)
    assert keys[0] == keys[2] != keys[1]


async def test_peer_and_route_keys_extend_the_upstream_key() -> None:
    """key: peer / route: one bucket per app address / per route, under the upstream's name."""
    backend = ScriptedBackend()
    f, _, _ = global_filter(backend, rate="1/s", key="peer")
    await f(make_exchange(client="10.1.2.3:555"), responder(200))
    backend2 = ScriptedBackend()
    g, _, _ = global_filter(backend2, rate="1/s", key="route")
    await g(make_exchange(), responder(200))
    assert [backend.calls[0][0], backend2.calls[0][0]] == ["test:10.1.2.3", "test:test"]


def test_without_the_builtin_plugin_a_global_limit_says_what_is_missing() -> None:
    """A config with global limits and the rate-limit plugin disabled fails naming the plugin."""
    ctx = make_route_context(
        {"url": "http://x", "global_rate_limit": {"backend": "b", "rate": "1/s"}},
        config={"ratelimit_backends": {"b": {"type": "local"}}},
    )
    with pytest.raises(RuntimeError, match="sidecar.ratelimit.plugin"):
        global_rate_limit.factory(ctx)


def test_off_unless_configured() -> None:
    """No global_rate_limit (or enabled: false): no filter, no backend round trip."""
    assert global_rate_limit.factory(make_route_context()) is None


# --- the local backend ------------------------------------------------------------------------


async def test_the_local_backend_admits_burst_then_refuses_with_the_wait() -> None:
    """type: local decides like Redis would, in this process only."""
    backend = LocalBackend("mem", RateLimitBackendConfig(type="local"))
    decisions = [await backend.decide("k", Limit(2.0, 3)) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert 0 < decisions[3].retry_after <= 0.5


# --- config -----------------------------------------------------------------------------------


def problems(text: str) -> list[str]:
    schemas = isolated_plugin_host().schemas()
    with pytest.raises(ConfigError) as e:
        parse_config(text, "s.yaml", {}, schemas=schemas)
    return [str(p) for p in e.value.problems]


def test_a_backend_type_nobody_registered_is_a_config_error() -> None:
    """A typo in `type` fails at start-up with the key path and the types there are."""
    assert problems("ratelimit_backends: {b: {type: rediss, url: 'redis://h'}}\n") == [
        's.yaml: ratelimit_backends.b.type: no rate-limit backend type named "rediss" '
        "(registered: local, redis)"
    ]


def test_redis_needs_a_redis_url_and_local_takes_none() -> None:
    """Each backend type says which `url` it takes."""
    assert problems(
        "ratelimit_backends:\n"
        "  a: {type: redis}\n"
        "  b: {type: redis, url: 'http://h:6379'}\n"
        "  c: {type: local, url: 'redis://h'}\n"
    ) == [
        "s.yaml: ratelimit_backends.a.url: required key is missing (the redis backend)",
        "s.yaml: ratelimit_backends.b.url: the redis backend takes redis://, rediss://, unix:// "
        "URLs, got http://",
        "s.yaml: ratelimit_backends.c.url: the local backend takes no url",
    ]


def test_backend_options_are_validated_by_the_backend() -> None:
    """A typo in a backend's own key is caught, with a suggestion."""
    assert problems("ratelimit_backends: {b: {type: redis, url: 'redis://h', key_prefx: x}}\n") == [
        "s.yaml: ratelimit_backends.b.key_prefx: unknown key (did you mean 'key_prefix'?)"
    ]


def test_a_password_in_the_url_is_refused_without_repeating_it() -> None:
    """Secrets never sit in the URL (/config shows it): a password goes by reference."""
    text = "ratelimit_backends: {b: {type: redis, url: 'redis://:hunter2@h'}}\n"
    found = problems(text)
    assert len(found) == 1 and "hunter2" not in found[0] and "password:" in found[0]


def test_global_rate_limit_must_name_a_configured_backend() -> None:
    """upstreams.X.global_rate_limit.backend (and a route's) names a ratelimit_backends entry."""
    assert problems(
        "ratelimit_backends: {shared: {type: local}}\n"
        "upstreams: {u: {url: 'http://h', global_rate_limit: {backend: shraed, rate: 1/s}}}\n"
        "routes: [{match: {path_prefix: /x}, upstream: u,\n"
        "          global_rate_limit: {backend: other, rate: 1/s}}]\n"
    ) == [
        's.yaml: upstreams.u.global_rate_limit.backend: no backend named "shraed" under '
        "ratelimit_backends (shared)",
        's.yaml: routes[0].global_rate_limit.backend: no backend named "other" under '
        "ratelimit_backends (shared)",
    ]


# --- the hook ---------------------------------------------------------------------------------


class MemoBackend(RateLimitBackend):
    async def decide(self, key: str, limit: Limit) -> Decision:
        return Decision(True)


class MemoPlugin:
    @staticmethod
    @hookimpl
    def sidecar_register_ratelimit_backends(registry: RateLimitBackendRegistry) -> None:
        registry.add("memo", MemoBackend)


def test_a_plugin_adds_a_backend_type_the_config_can_name() -> None:
    """Third parties register backend types through the hook; `sidecar plugins` lists them."""
    host = isolated_plugin_host(MemoPlugin)
    assert host.registries.ratelimit_backends["memo"] is MemoBackend
    listed = {p.name: p.registered for p in host.plugins()}
    assert "ratelimit backend memo" in listed["MemoPlugin"]
    assert {"ratelimit backend local", "ratelimit backend redis"} <= set(
        listed["sidecar.ratelimit.plugin"]
    )
    schemas = host.schemas()
    parse_config("ratelimit_backends: {m: {type: memo}}\n", "s.yaml", {}, schemas=schemas)


def test_a_backend_type_taken_twice_is_refused_naming_both() -> None:
    """A plugin cannot silently replace the built-in redis backend."""

    class Clash:
        @staticmethod
        @hookimpl
        def sidecar_register_ratelimit_backends(registry: RateLimitBackendRegistry) -> None:
            registry.add("redis", MemoBackend)

    with pytest.raises(RegistryConflict, match="'redis' registered twice: by plugin 'Clash'"):
        isolated_plugin_host(Clash)
