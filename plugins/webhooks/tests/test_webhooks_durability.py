"""Nothing accepted is lost: `sidecar run` is killed with SIGKILL while deliveries are in flight
and others wait in their retry schedule, restarted on the same queue (the directory, or the
Redis stream: the restarted sidecar is a new consumer that takes over the dead one's deliveries
after ``claim_idle``), and every event it answered 202 for reaches the endpoint (at least once),
signed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook
from webhooks_receiver import Receiver, wait_until
from webhooks_support import endpoint, hooks_config, nothing_left

from sidecar.testing import SidecarProcess

EVENTS = 30


async def test_every_accepted_event_is_delivered_after_a_sigkill(
    receivers: Callable[..., Awaitable[Receiver]], secret_env: Any, queue: dict[str, Any]
) -> None:
    """Events answered 202 before a SIGKILL mid-delivery are all delivered after the restart."""
    ep = await receivers([500, 500], hold=True)  # two failures: those two wait for a retry
    secret = secret_env("WH")
    retry = {"attempts": 20, "first_delay": "100ms", "max_delay": "300ms"}
    config = hooks_config(queue, {"ep": endpoint(ep.url, "WH", concurrency=2)}, retry=retry)
    config["shutdown"] = {"app_quiet_period": "0s"}  # nothing to wait for at the SIGTERM
    first = SidecarProcess(config)
    accepted: list[str] = []
    try:
        await asyncio.to_thread(first.start)
        async with httpx.AsyncClient(timeout=10) as client:
            for n in range(EVENTS):
                r = await client.post(f"{first.http_url}/hooks/order.created", json={"n": n})
                assert r.status_code == 202, r.text
                accepted.append(r.json()["id"])
        await ep.wait_for(2)
        ep.release(4)  # 500, 500, then two 200s; two more deliveries arrive and are held
        await ep.wait_for(6)
        await wait_until(lambda: len(ep.answered) == 4, what="four answers sent")
        first.kill()  # SIGKILL: two deliveries in flight, two in their retry schedule
    finally:
        first.kill()
    assert len(ep.delivered_ids()) == 2
    ep.hold = False  # the restarted sidecar's deliveries are answered 200 at once
    second = SidecarProcess(config)
    try:
        await asyncio.to_thread(second.start)
        await wait_until(
            lambda: ep.delivered_ids() >= set(accepted), within=20, what="all delivered"
        )
        await wait_until(lambda: nothing_left(queue), what="nothing is left in the queue")
    finally:
        exit_code = second.terminate()
    assert exit_code == 0  # SIGTERM drains: the engines stop cleanly
    logs = first.log_path.read_text() + second.log_path.read_text()
    assert secret not in logs and secret.removeprefix("whsec_") not in logs
    for got in ep.received:
        Webhook(secret).verify(got.body, got.headers)
    assert {got.headers["webhook-id"] for got in ep.received} == set(accepted)
