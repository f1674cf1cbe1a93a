"""What the queue itself promises, through real sidecars on 127.0.0.1: a full queue refuses
instead of dropping (both kinds); with the Redis queue, replicas on one stream share the work
without sending an event twice, one that stopped has its deliveries taken over, a reload
resumes what it cut at once, and Redis being down is a 503 for the app with deliveries resuming
once it is back."""

from __future__ import annotations

import collections
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
import sidecar_webhooks
import yaml
from standardwebhooks.webhooks import Webhook
from webhooks_receiver import Receiver, wait_until
from webhooks_redis import RedisServer
from webhooks_support import (
    admin,
    endpoint,
    hooks_config,
    nothing_left,
    on_free_ports,
    post_event,
    redis_queue,
)

Factory = Callable[..., Any]
Receivers = Callable[..., Awaitable[Receiver]]


async def test_a_full_queue_refuses_new_events_and_drops_nothing(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, queue: dict[str, Any]
) -> None:
    """Past max_pending the app gets 503 webhook_queue_unavailable and the event is not taken;
    what was accepted is all delivered, and then events are accepted again."""
    held = await receivers(hold=True)
    secret_env("WH")
    config = hooks_config(queue, {"ep": endpoint(held.url, "WH", concurrency=1)}, max_pending=2)
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        ids = [(await post_event(s, "order.created")).json()["id"] for _ in range(2)]
        full = await post_event(s, "order.created")
        await held.wait_for(1)
        held.release(2)
        await wait_until(lambda: held.delivered_ids() == set(ids), what="both delivered")
        held.hold = False
        again = await post_event(s, "order.created")
        await wait_until(lambda: len(held.delivered_ids()) == 3, what="the next one delivered")
    assert (full.status_code, full.headers["x-sidecar-error"]) == (503, "webhook_queue_unavailable")
    assert again.status_code == 202
    assert len(held.received) == 3


async def test_two_replicas_share_one_stream_without_sending_twice(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, redis_server: RedisServer
) -> None:
    """Two sidecars on one Redis queue send at the same time, each event once; the delivery a
    stopped replica was sending is sent by the other after claim_idle (the at-least-once edge:
    that one event arrives twice)."""
    held = await receivers(hold=True)
    secret = secret_env("WH")
    queue = redis_queue(redis_server, prefetch=1, claim_idle="1s")
    config = hooks_config(queue, {"ep": endpoint(held.url, "WH", concurrency=1)})
    ids: list[str] = []
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as one:
        async with sidecar_factory(config, plugins=[sidecar_webhooks]) as two:
            for n in range(4):
                r = await post_event((one, two)[n % 2], "order.created")
                ids.append(r.json()["id"])
            # each replica holds one delivery at most (prefetch 1): two in flight = both send
            await wait_until(lambda: held.in_flight == 2, what="both replicas sending")
            held.release(4)
            await wait_until(lambda: held.delivered_ids() == set(ids), what="four delivered")
            assert len(held.received) == 4  # under normal operation: each event once
            for n in range(2):
                ids.append((await post_event((one, two)[n], "order.created")).json()["id"])
            await wait_until(lambda: held.in_flight == 2, what="both replicas sending again")
        # `two` stopped mid-delivery: its delivery was not written, so `one` takes it over
        held.hold = False
        held.release(10)
        await wait_until(lambda: held.delivered_ids() == set(ids), within=10, what="all six")
        await wait_until(lambda: len(held.received) == 7, what="the cut one sent again")
        overview = (await admin(one, "GET", "/webhooks")).json()["hooks"]
    times = collections.Counter(got.headers["webhook-id"] for got in held.received)
    assert sorted(times.values()) == [1, 1, 1, 1, 1, 2]
    assert overview["endpoints"]["ep"]["pending"] == 0
    for got in held.received:
        Webhook(secret).verify(got.body, got.headers)


async def test_redis_down_is_503_for_the_app_and_deliveries_resume_when_it_is_back(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any
) -> None:
    """While Redis does not answer the app gets 503 webhook_queue_unavailable; a delivery waiting
    for its retry is delivered once Redis is back (its append-only file kept it), and new events
    are accepted again."""
    server = RedisServer(persistent=True).start()
    try:
        ep = await receivers([500])
        secret = secret_env("WH")
        retry = {"attempts": 5, "first_delay": "300ms", "max_delay": "1s"}
        config = hooks_config(redis_queue(server), {"ep": endpoint(ep.url, "WH")}, retry=retry)
        async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
            first = (await post_event(s, "order.created")).json()["id"]

            async def waiting_for_retry() -> bool:
                r = await admin(s, "GET", "/webhooks/deliveries?upstream=hooks&state=pending")
                return [d["attempts"] for d in r.json()["deliveries"]] == [1]

            await wait_until(waiting_for_retry, what="the failed attempt is written")
            server.kill()
            down = await post_event(s, "order.created", json.dumps({"n": 2}).encode())
            listing = await admin(s, "GET", "/webhooks/deliveries?upstream=hooks&state=dead")
            server.start()
            await wait_until(lambda: first in ep.delivered_ids(), what="the retry after Redis")
            again = await post_event(s, "order.created")
            await wait_until(lambda: again.json()["id"] in ep.delivered_ids(), what="new event")
    finally:
        server.stop()
    assert (down.status_code, down.headers["x-sidecar-error"]) == (503, "webhook_queue_unavailable")
    assert listing.status_code == 503
    assert again.status_code == 202
    assert len(ep.received) == 3  # the first twice (500, then 200), the new one; not the refused
    for got in ep.received:
        Webhook(secret).verify(got.body, got.headers)


async def test_a_reload_resumes_the_redis_deliveries_it_cut_at_once(
    sidecar_factory: Factory,
    receivers: Receivers,
    secret_env: Any,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """A reload that restarts the engine mid-delivery sends that delivery again right away (the
    new engine reads back what its consumer held), not after claim_idle."""
    held = await receivers(hold=True)
    secret_env("WH")
    queue = redis_queue(redis_server, claim_idle="60s")
    before = hooks_config(queue, {"ep": endpoint(held.url, "WH")})
    after = hooks_config(queue, {"ep": endpoint(held.url, "WH", timeout="9s")})
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(on_free_ports(before)))
    async with sidecar_factory(
        path.read_text(), plugins=[sidecar_webhooks], config_path=str(path)
    ) as s:
        msg_id = (await post_event(s, "order.created")).json()["id"]
        await held.wait_for(1)
        path.write_text(yaml.safe_dump(on_free_ports(after)))
        assert (await s.reload_result()).applied
        again = await held.wait_for(2, within=20)  # far less than claim_idle (60 s)
        held.hold = False
        held.release(10)
        await wait_until(lambda: msg_id in held.delivered_ids(), what="delivered")
    assert [got.headers["webhook-id"] for got in again] == [msg_id, msg_id]


async def test_dead_letters_and_disabled_endpoints_survive_a_restart(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, queue: dict[str, Any]
) -> None:
    """After a restart on the same queue, a dead delivery is still listed (and redeliverable), an
    endpoint a 410 disabled is still disabled, and the gauges say so from the start."""
    gone, failing = await receivers([410]), await receivers(default=500)
    secret_env("WH")
    endpoints = {"gone": endpoint(gone.url, "WH"), "failing": endpoint(failing.url, "WH")}
    config = hooks_config(queue, endpoints, retry={"attempts": 1, "first_delay": "50ms"})
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        msg_id = (await post_event(s, "order.created")).json()["id"]

        async def both_dead() -> bool:
            r = await admin(s, "GET", "/webhooks/deliveries?upstream=hooks&state=dead")
            return bool(r.json()["total"] == 2)

        await wait_until(both_dead, what="both deliveries dead")
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        overview = (await admin(s, "GET", "/webhooks")).json()["hooks"]["endpoints"]
        dead = (await admin(s, "GET", "/webhooks/deliveries?upstream=hooks&state=dead")).json()
        metrics = (await admin(s, "GET", "/metrics")).text
        later = (await post_event(s, "order.created")).json()
        failing.default = 200
        r = await admin(s, "POST", f"/webhooks/deliveries/hooks/{msg_id}.failing/redeliver")
        await wait_until(lambda: msg_id in failing.delivered_ids(), what="redelivered")
    assert overview["gone"]["disabled"] and not overview["failing"]["disabled"]
    assert sorted(d["key"] for d in dead["deliveries"]) == [f"{msg_id}.failing", f"{msg_id}.gone"]
    assert 'sidecar_webhooks_queued{endpoint="gone",state="dead",upstream="hooks"} 1.0' in metrics
    assert later["endpoints"] == ["failing"]
    assert r.status_code == 200


async def test_a_full_redis_refuses_new_events_but_lets_held_deliveries_finish(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, redis_server: RedisServer
) -> None:
    """With Redis out of memory (noeviction) the app gets 503, while a delivery already held
    still has its failed attempt written and is retried on schedule and delivered."""
    ep = await receivers([500], hold=True)
    secret_env("WH")
    queue = redis_queue(redis_server, claim_idle="5s")
    retry = {"attempts": 3, "first_delay": "1s", "max_delay": "1s"}
    config = hooks_config(queue, {"ep": endpoint(ep.url, "WH")}, retry=retry)
    with redis.Redis.from_url(redis_server.url) as control:
        async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
            msg_id = (await post_event(s, "order.created")).json()["id"]
            await ep.wait_for(1)
            control.config_set("maxmemory-policy", "noeviction")
            control.config_set("maxmemory", "1")  # every growing write is refused now
            try:
                full = await post_event(s, "order.created")
                ep.hold = False
                ep.release(10)

                async def failed_attempt_written() -> bool:
                    r = await admin(s, "GET", "/webhooks/deliveries?upstream=hooks&state=pending")
                    return [d["attempts"] for d in r.json()["deliveries"]] == [1]

                await wait_until(failed_attempt_written, what="the 500 written under OOM")
                await wait_until(lambda: msg_id in ep.delivered_ids(), what="retried, delivered")
                await wait_until(lambda: nothing_left(queue), what="and forgotten")
            finally:
                control.config_set("maxmemory", "0")
    assert (full.status_code, full.headers["x-sidecar-error"]) == (503, "webhook_queue_unavailable")
    first, second = ep.received
    assert second.at - first.at < 4  # on its 1 s schedule, not taken over after claim_idle
