"""The circuit breaker on a real sidecar against failing upstreams on loopback: it opens after N
failures, answers instantly while open without calling the upstream, recovers through half-open,
and shows its state on /upstreams and /metrics."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from sidecar.app import Sidecar
from sidecar.testing import FakeUpstream, running_sidecar

#: every wait on a condition is bounded by this (seconds).
WAIT = 10.0


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


class Switchable:
    """An upstream handler: 503 (after ``delay``) while sick, 200 once healthy."""

    def __init__(self, delay: float = 0.0) -> None:
        self.healthy = False
        self.delay = delay

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if self.healthy:
            return web.Response(text="ok")
        await asyncio.sleep(self.delay)  # a sick upstream is slow too
        return web.Response(status=503, text="sick")


def breaker_state(s: Sidecar, upstream: str = "pay") -> dict[str, Any]:
    state: dict[str, Any] = s.describe_upstreams()[upstream]["policies"]["circuit_breaker"]
    return state


async def call_until(client: httpx.AsyncClient, path: str, status: int) -> httpx.Response:
    """Call ``path`` until the answer has ``status`` (bounded), pausing briefly between calls."""
    deadline = time.monotonic() + WAIT
    while True:
        r = await client.get(path)
        if r.status_code == status and "x-sidecar-error" not in r.headers:
            return r
        assert time.monotonic() < deadline, f"still {r.status_code} {r.text!r}"
        await asyncio.sleep(0.02)


async def test_opens_after_n_failures_rejects_instantly_and_recovers_through_half_open() -> None:
    """A sick upstream is left alone while the breaker is open, and used again once it is well."""
    sick = Switchable(delay=0.2)
    async with FakeUpstream(sick) as up:
        cfg = {
            "upstreams": {
                "pay": {
                    "url": up.url,
                    "retry": {"enabled": False},
                    "circuit_breaker": {"consecutive_failures": 3, "open_for": "300ms"},
                }
            }
        }
        async with (
            running_sidecar(cfg) as s,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=WAIT) as c,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.admin_port}") as admin,
        ):
            for _ in range(3):
                r = await c.get("/pay/charge")
                assert r.status_code == 503 and "x-sidecar-error" not in r.headers  # upstream's
            assert len(up.requests) == 3
            assert breaker_state(s)["state"] == "open"

            latencies = []
            for _ in range(20):
                t0 = time.perf_counter()
                r = await c.get("/pay/charge")
                latencies.append(time.perf_counter() - t0)
                assert r.status_code == 503
                assert r.headers["x-sidecar-error"] == "circuit_open"
                assert r.headers["retry-after"] == "1"  # 0.3 s open, rounded up
            assert len(up.requests) == 3  # no call reached the upstream while open
            # far below the sick upstream's 0.2 s: nothing was awaited but the sidecar itself
            assert sorted(latencies)[10] < 0.05 and max(latencies) < 0.15, latencies

            text = (await admin.get("/metrics")).text
            assert metric(text, "sidecar_circuit_state", upstream="pay") == 1.0
            assert metric(text, "sidecar_circuit_transitions_total", upstream="pay", to="open") == 1
            shown = (await admin.get("/upstreams")).json()["pay"]["policies"]["circuit_breaker"]
            assert shown["state"] == "open" and 0 < shown["half_open_in_s"] <= 0.3

            sick.healthy = True
            r = await call_until(c, "/pay/charge", 200)
            assert len(up.requests) == 4  # exactly one trial call, and it closed the breaker
            state = breaker_state(s)
            assert state["state"] == "closed"
            assert state["transitions"] == {"closed": 1, "open": 1, "half-open": 1}
            text = (await admin.get("/metrics")).text
            assert metric(text, "sidecar_circuit_state", upstream="pay") == 0.0
            for to in ("open", "half-open", "closed"):
                labels = {"upstream": "pay", "to": to}
                assert metric(text, "sidecar_circuit_transitions_total", **labels) == 1.0
            assert (await c.get("/pay/again")).status_code == 200


async def test_a_refusing_upstream_is_no_longer_dialled_once_open() -> None:
    """Connection refused five times (the default) and the sidecar stops trying to connect."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = sock.getsockname()[1]
    sock.close()
    cfg = {"upstreams": {"pay": {"url": f"http://127.0.0.1:{dead}", "retry": {"enabled": False}}}}
    async with (
        running_sidecar(cfg) as s,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=WAIT) as c,
    ):
        codes = [(await c.get("/pay/")).headers["x-sidecar-error"] for _ in range(25)]
        assert codes == ["upstream_connect"] * 5 + ["circuit_open"] * 20
        attempts = s.metrics.registry.get_sample_value(
            "sidecar_upstream_attempts_total", {"upstream": "pay", "outcome": "upstream_connect"}
        )
        assert attempts == 5.0
        assert breaker_state(s)["half_open_in_s"] > 25  # the 30 s default


async def test_a_failed_trial_reopens_for_twice_as_long_up_to_the_cap() -> None:
    """A still-sick upstream gets probed less and less often (0.2 s, 0.4 s, then the 0.4 s cap)."""
    async with FakeUpstream(Switchable()) as up:
        cfg = {
            "upstreams": {
                "pay": {
                    "url": up.url,
                    "retry": {"enabled": False},
                    "circuit_breaker": {
                        "consecutive_failures": 1,
                        "open_for": "200ms",
                        "max_open_for": "400ms",
                    },
                }
            }
        }
        async with (
            running_sidecar(cfg) as s,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=WAIT) as c,
        ):
            await c.get("/pay/")
            seen = []
            for _ in range(3):
                seen.append(breaker_state(s)["open_for_s"])
                await call_until(c, "/pay/", 503)  # the trial, failing again
                assert breaker_state(s)["state"] == "open"
            seen.append(breaker_state(s)["open_for_s"])
            assert seen == [0.2, 0.4, 0.4, 0.4]
            assert len(up.requests) == 4  # the first failure and three trials, nothing else


async def test_a_flapping_upstream_trips_the_ratio_but_not_the_streak() -> None:
    """Every other call failing never makes 3 in a row, but it is a 50 % failure ratio."""

    def flapping() -> Any:
        calls = [0]

        async def handler(request: web.Request) -> web.StreamResponse:
            calls[0] += 1
            return web.Response(status=200 if calls[0] % 2 else 502)

        return handler

    async with FakeUpstream(flapping()) as streak_up, FakeUpstream(flapping()) as ratio_up:
        off = {"enabled": False}
        cfg = {
            "upstreams": {
                "streak": {
                    "url": streak_up.url,
                    "retry": off,
                    "circuit_breaker": {"consecutive_failures": 3},
                },
                "ratio": {
                    "url": ratio_up.url,
                    "retry": off,
                    "circuit_breaker": {
                        "consecutive_failures": 3,
                        "failure_ratio": 0.5,
                        "min_requests": 10,
                        "window": "1m",
                    },
                },
            }
        }
        async with (
            running_sidecar(cfg) as s,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=WAIT) as c,
        ):
            for _ in range(40):
                await c.get("/streak/")
            assert len(streak_up.requests) == 40
            assert breaker_state(s, "streak")["state"] == "closed"
            codes = [(await c.get("/ratio/")).status_code for _ in range(12)]
            assert codes == [200, 502] * 5 + [503, 503]
            assert len(ratio_up.requests) == 10
            state = breaker_state(s, "ratio")
            assert state["state"] == "open"
            assert state["window"]["calls"] == 0  # a fresh window once it closes again


async def test_an_open_breaker_stops_the_retries() -> None:
    """Retries (on by default) go through the breaker: once it opens, no more attempts."""
    async with FakeUpstream(Switchable()) as up:
        cfg = {
            "upstreams": {
                "pay": {
                    "url": up.url,
                    "retry": {
                        "attempts": 3,
                        "backoff": {"base": "1ms", "max": "2ms"},
                        "budget": {"min_retries": 100},  # only the breaker may stop them
                    },
                    "circuit_breaker": {"consecutive_failures": 5},
                }
            }
        }
        async with (
            running_sidecar(cfg) as s,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=WAIT) as c,
        ):
            first = await c.get("/pay/")
            assert first.status_code == 503 and len(up.requests) == 3
            second = await c.get("/pay/")  # two attempts trip it; the third is refused
            assert second.headers["x-sidecar-error"] == "circuit_open"
            assert len(up.requests) == 5
            assert breaker_state(s)["state"] == "open"


async def test_one_breaker_per_upstream_across_routes_kept_across_an_unrelated_reload(
    tmp_path: Path,
) -> None:
    """Failures through any route open the upstream's breaker for all of them; a reload that
    leaves its config alone keeps it open, one that changes it starts afresh."""
    async with FakeUpstream(Switchable()) as up:
        data: dict[str, Any] = {
            "admin": {"address": "127.0.0.1:0"},
            "http": {"address": "127.0.0.1:0"},
            "grpc": {"address": "127.0.0.1:0"},
            "upstreams": {
                "pay": {
                    "url": up.url,
                    "retry": {"enabled": False},
                    "circuit_breaker": {"consecutive_failures": 2},
                }
            },
            "routes": [
                {"name": "checkout", "match": {"path_prefix": "/checkout"}, "upstream": "pay"}
            ],
        }
        path = tmp_path / "sidecar.yaml"
        path.write_text(yaml.safe_dump(data))
        async with (
            running_sidecar(path.read_text(), config_path=str(path)) as s,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=WAIT) as c,
        ):
            assert (await c.get("/checkout/a")).status_code == 503
            assert (await c.get("/checkout/b")).status_code == 503
            r = await c.get("/pay/c")  # another route, the same upstream
            assert r.headers["x-sidecar-error"] == "circuit_open"

            data["upstreams"]["pay"]["timeout"] = "10s"  # not the breaker's config
            path.write_text(yaml.safe_dump(data))
            assert await s.reload() is True
            r = await c.get("/pay/d")
            assert r.headers["x-sidecar-error"] == "circuit_open"
            assert len(up.requests) == 2

            data["upstreams"]["pay"]["circuit_breaker"]["consecutive_failures"] = 3
            path.write_text(yaml.safe_dump(data))
            assert await s.reload() is True
            assert breaker_state(s)["state"] == "closed"
            r = await c.get("/pay/e")
            assert r.status_code == 503 and "x-sidecar-error" not in r.headers
            assert len(up.requests) == 3


async def test_calls_cut_by_the_timeout_count_as_failures() -> None:
    """An upstream that stalls past `timeout` is a failing upstream: the breaker opens."""
    stop = asyncio.Event()

    async def stalls(request: web.Request) -> web.StreamResponse:
        await asyncio.wait_for(stop.wait(), WAIT)
        return web.Response(text="late")

    async with FakeUpstream(stalls) as up:
        cfg = {
            "upstreams": {
                "pay": {
                    "url": up.url,
                    "timeout": "100ms",
                    "retry": {"enabled": False},
                    "circuit_breaker": {"consecutive_failures": 2},
                }
            }
        }
        try:
            async with (
                running_sidecar(cfg) as s,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=WAIT) as c,
            ):
                codes = [(await c.get("/pay/")).headers["x-sidecar-error"] for _ in range(3)]
                assert codes == ["upstream_timeout", "upstream_timeout", "circuit_open"]
                assert len(up.requests) == 2
        finally:
            stop.set()


async def test_attempts_cut_by_per_try_timeout_count_as_failures() -> None:
    """A stalling upstream trips the breaker through per-try timeouts, not only overall ones."""

    released = asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        async with asyncio.timeout(WAIT):
            await released.wait()
        return web.Response(text="late")

    async with FakeUpstream(stall) as up:
        cfg = {
            "upstreams": {
                "pay": {
                    "url": up.url,
                    "timeout": "5s",
                    "retry": {"attempts": 2, "per_try_timeout": "100ms", "on": ["timeout"]},
                    "circuit_breaker": {"consecutive_failures": 2, "open_for": "30s"},
                }
            }
        }
        async with (
            running_sidecar(cfg) as s,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=WAIT) as c,
        ):
            first = await c.get("/pay/x")  # two attempts, each cut at 100 ms: two failures
            assert first.status_code == 504
            assert breaker_state(s)["state"] == "open"
            calls = len(up.requests)
            rejected = await c.get("/pay/x")
            assert rejected.headers["x-sidecar-error"] == "circuit_open"
            assert len(up.requests) == calls
            released.set()
