"""Subscriptions follow a config reload: a changed one is stopped and started again, a removed
one stopped, an added one started, one left alone keeps running, and what was in flight at the
reload is settled and acknowledged on the old consumer rather than delivered again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import sidecar_pubsub
import yaml
from aiohttp import web
from pubsub_app import Stream, prefix, subscribed_config, until
from pubsub_brokers import RedisBroker

from sidecar.testing import FakeUpstream

FAST = {"retry": {"attempts": 3, "backoff": "10ms", "max_backoff": "50ms"}}


def config_with(broker: RedisBroker, app_url: str, key_prefix: str, *subs: Any) -> dict[str, Any]:
    config = subscribed_config(broker.url, app_url, key_prefix)
    options = config["upstreams"]["events"]["options"]
    options["topics"] = ["orders", "orders.dlq", "audit"]
    options["subscriptions"] = [{**FAST, **sub} for sub in subs]
    return config


async def test_a_reload_stops_changed_and_removed_subscriptions_and_starts_added_ones(
    redis_broker: RedisBroker, sidecar_factory: Any, tmp_path: Path
) -> None:
    """After a reload that moves `orders/shop` to another path, removes `orders/ops`, adds
    `audit/ops` and keeps `orders/keep`: the delivery held at the reload is acknowledged once
    and not sent again, new messages go to the new path only, the added subscription delivers,
    and the kept one is not stopped (its held delivery does not hold the reload up)."""
    p = prefix()
    orders = Stream(redis_broker.url, f"{p}orders")
    got: dict[str, list[str]] = {"/a": [], "/b": [], "/x": [], "/c": [], "/k": []}
    release, release_kept = asyncio.Event(), asyncio.Event()

    async def app_handler(request: web.Request) -> web.Response:
        got[request.path].append(request.headers["ce-id"])
        if request.path == "/a" and len(got["/a"]) == 2:
            await asyncio.wait_for(release.wait(), 15)  # in flight across the reload
        if request.path == "/k":
            await asyncio.wait_for(release_kept.wait(), 15)  # held until the reload is in
        return web.Response(status=200)

    async with FakeUpstream(app_handler) as app:
        shop, ops = {"topic": "orders", "group": "shop"}, {"topic": "orders", "group": "ops"}
        # stopping it would wait out its 30 s timeout: longer than the test waits
        keep = {"topic": "orders", "group": "keep", "path": "/k", "timeout": "30s"}
        before = config_with(
            redis_broker, app.url, p, {**shop, "path": "/a"}, {**ops, "path": "/x"}, keep
        )
        after = config_with(
            redis_broker,
            app.url,
            p,
            {**shop, "path": "/b"},
            {"topic": "audit", "group": "ops", "path": "/c"},
            keep,
        )
        path = tmp_path / "sidecar.yaml"
        path.write_text(yaml.safe_dump(before))
        async with sidecar_factory(
            path.read_text(), plugins=[sidecar_pubsub], config_path=str(path)
        ) as s:
            base = f"http://127.0.0.1:{s.http_port}/events"
            async with httpx.AsyncClient(timeout=10) as client:

                async def publish(topic: str) -> str:
                    r = await client.post(f"{base}/{topic}", content=b"x")
                    assert r.status_code == 204, r.text
                    return str(r.headers["ce-id"])

                m1, m2 = await publish("orders"), await publish("orders")
                await until(lambda: got["/a"] == [m1, m2], "m2 held in flight on /a")
                await until(lambda: len(got["/x"]) == 2, "both on /x")
                await until(lambda: got["/k"] == [m1], "m1 held on /k")
                path.write_text(yaml.safe_dump(after))
                result = await s.reload_result()
                assert result.applied, result
                release.set()  # the stopping subscription settles m2 on its own consumer
                a1 = await publish("audit")
                # subscriptions start once the stopped ones are gone: the reload is in effect
                await until(lambda: got["/c"] == [a1], "the added subscription delivers")
                m3 = await publish("orders")
                await until(lambda: got["/b"] == [m3], "m3 on the moved path")
                await until(lambda: orders.pending() == 0, "nothing pending in group shop")
                release_kept.set()
                await until(lambda: got["/k"] == [m1, m2, m3], "the kept one delivers on")
    assert got["/a"] == [m1, m2]  # m2 was acknowledged, not delivered again on /b
    assert got["/x"] == [m1, m2]  # the removed subscription took nothing more
    orders.close()
