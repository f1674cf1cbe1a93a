"""Local rate limits through a real sidecar: what the app sees on a 429, and what is shared."""

from __future__ import annotations

import asyncio

import httpx

from sidecar.testing import FakeUpstream, running_sidecar


async def test_over_the_limit_the_app_gets_429_with_when_to_retry() -> None:
    """The app can tell a sidecar 429 from the upstream's and knows when to come back."""
    async with FakeUpstream() as up:
        config = {"upstreams": {"up": {"url": up.url, "rate_limit": {"rate": "1/min", "burst": 3}}}}
        async with running_sidecar(config) as s, httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{s.http_port}/up/x"
            answers = [await client.get(url) for _ in range(10)]
            metrics = (await client.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
    assert [r.status_code for r in answers] == [200] * 3 + [429] * 7
    refused = answers[-1]
    assert refused.headers["x-sidecar-error"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-policy"] == '"local";q=1;w=60'
    assert refused.headers["ratelimit"] == f'"local";r=0;t={refused.headers["retry-after"]}'
    assert len(up.requests) == 3  # refused calls never reach the upstream
    assert (
        'sidecar_rate_limited_total{mode="reject",route="up",scope="local",upstream="up"} 7.0'
        in metrics
    )


async def test_all_routes_of_an_upstream_share_its_bucket() -> None:
    """An explicit route does not give the app a second budget for the same upstream."""
    async with FakeUpstream() as up:
        config = {
            "upstreams": {"up": {"url": up.url, "rate_limit": {"rate": "1/min", "burst": 2}}},
            "routes": [{"name": "api", "match": {"path_prefix": "/api"}, "upstream": "up"}],
        }
        async with running_sidecar(config) as s, httpx.AsyncClient() as client:
            base = f"http://127.0.0.1:{s.http_port}"
            codes = [
                (await client.get(f"{base}{path}")).status_code
                for path in ("/up/a", "/api/b", "/up/c", "/api/d")
            ]
            upstreams = (await client.get(f"http://127.0.0.1:{s.admin_port}/upstreams")).json()
    assert codes == [200, 200, 429, 429]
    assert upstreams["up"]["policies"]["rate_limit"]["rate"] == "1/min"


async def test_a_route_with_its_own_limit_has_its_own_bucket() -> None:
    """routes[i].rate_limit replaces the upstream's limit on that route, with separate tokens."""
    async with FakeUpstream() as up:
        config = {
            "upstreams": {"up": {"url": up.url, "rate_limit": {"rate": "1/min", "burst": 1}}},
            "routes": [
                {
                    "name": "bulk",
                    "match": {"path_prefix": "/bulk"},
                    "upstream": "up",
                    "rate_limit": {"rate": "1/min", "burst": 2},
                }
            ],
        }
        async with running_sidecar(config) as s, httpx.AsyncClient() as client:
            base = f"http://127.0.0.1:{s.http_port}"
            bulk = [(await client.get(f"{base}/bulk/x")).status_code for _ in range(3)]
            plain = [(await client.get(f"{base}/up/x")).status_code for _ in range(2)]
    assert bulk == [200, 200, 429]
    assert plain == [200, 429]


async def test_wait_mode_delays_instead_of_refusing() -> None:
    """on_limit: wait: a short burst over the rate is smoothed out, every call succeeds."""
    async with FakeUpstream() as up:
        policy = {"rate": "10/s", "burst": 1, "on_limit": "wait", "max_wait": "2s"}
        config = {"upstreams": {"up": {"url": up.url, "rate_limit": policy}}}
        async with running_sidecar(config) as s, httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{s.http_port}/up/x"
            answers = await asyncio.gather(*(client.get(url) for _ in range(6)))
            metrics = (await client.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
    assert [r.status_code for r in answers] == [200] * 6
    waited = metric(metrics, 'sidecar_rate_limited_total{mode="wait",route="up",scope="local"')
    assert waited >= 3  # six calls at once, one token per 100 ms: most of them waited
    assert metric(metrics, 'sidecar_rate_limited_total{mode="reject",route="up"') == 0


def metric(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )
