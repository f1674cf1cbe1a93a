"""How deliveries meet failing endpoints, through a real sidecar to real endpoints on
127.0.0.1: Retry-After, a hang, 410 Gone, a 500 storm against the breaker, a redirect."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sidecar_webhooks
from webhooks_receiver import Receiver, wait_until
from webhooks_support import admin, endpoint, hooks_config, post_event

Factory = Callable[..., Any]
Receivers = Callable[..., Awaitable[Receiver]]


async def test_retry_after_is_honoured(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, queue: dict[str, Any]
) -> None:
    """A 429 with Retry-After: 1 is tried again after a second, not on the 50 ms schedule
    (a Retry-After past max_delay would be cut to max_delay)."""
    limited = await receivers([429], headers={"retry-after": "1"})
    secret_env("WH")
    retry = {"attempts": 3, "first_delay": "50ms", "max_delay": "5s"}
    config = hooks_config(queue, {"limited": endpoint(limited.url, "WH")}, retry=retry)
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        assert (await post_event(s, "order.created")).status_code == 202
        first, second = await limited.wait_for(2)
    assert second.at - first.at >= 0.95


async def test_a_hanging_endpoint_times_out_and_is_retried(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, tmp_path: Path
) -> None:
    """An endpoint that does not answer within its timeout is tried again."""
    hangs = await receivers(["hang"])
    secret_env("WH")
    config = hooks_config(tmp_path, {"slow": endpoint(hangs.url, "WH", timeout="200ms")})
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        assert (await post_event(s, "order.created")).status_code == 202
        first, second = await hangs.wait_for(2)

        async def nothing_pending() -> bool:
            overview = (await admin(s, "GET", "/webhooks")).json()
            return overview["hooks"]["endpoints"]["slow"]["pending"] == 0

        await wait_until(nothing_pending, what="the retry was delivered")
    assert second.at - first.at >= 0.2


async def test_410_disables_the_endpoint_until_enabled(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, queue: dict[str, Any]
) -> None:
    """A 410 answer makes the delivery dead and stops deliveries to that endpoint; the admin
    enable action turns it back on."""
    gone = await receivers([410])
    secret_env("WH")
    async with sidecar_factory(
        hooks_config(queue, {"gone": endpoint(gone.url, "WH")}), plugins=[sidecar_webhooks]
    ) as s:
        assert (await post_event(s, "order.created")).json()["endpoints"] == ["gone"]
        await gone.wait_for(1)

        async def disabled() -> bool:
            return bool(
                (await admin(s, "GET", "/webhooks")).json()["hooks"]["endpoints"]["gone"][
                    "disabled"
                ]
            )

        await wait_until(disabled, what="the endpoint is disabled")
        assert (await post_event(s, "order.created")).json()["endpoints"] == []
        r = await admin(s, "POST", "/webhooks/endpoints/hooks/gone/enable")
        assert r.status_code == 200
        assert (await post_event(s, "order.created")).json()["endpoints"] == ["gone"]
        await gone.wait_for(2)
    assert len(gone.received) == 2


async def test_a_500_storm_opens_the_endpoints_breaker(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, queue: dict[str, Any]
) -> None:
    """After three failures in a row nothing is sent for open_for, then one probe at a time; once
    the endpoint answers again every event is delivered and no attempt was used up waiting."""
    storm = await receivers(default=500)
    secret_env("WH")
    ep = endpoint(storm.url, "WH", concurrency=1, breaker={"failures": 3, "open_for": "400ms"})
    retry = {"attempts": 5, "first_delay": "20ms", "max_delay": "50ms"}
    config = hooks_config(queue, {"storm": ep}, retry=retry)
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        for n in range(5):
            body = json.dumps({"n": n}).encode()
            assert (await post_event(s, "order.created", body)).status_code == 202
        await storm.wait_for(3)

        async def breaker_open() -> bool:
            overview = (await admin(s, "GET", "/webhooks")).json()["hooks"]["endpoints"]
            return bool(overview["storm"]["breaker"] == "open")

        await wait_until(breaker_open, what="the breaker opened after three failures")
        first = await storm.wait_for(4)
        assert first[3].at - first[2].at >= 0.38  # the breaker held the fourth attempt back
        storm.default = 200
        await wait_until(lambda: len(storm.delivered_ids()) == 5, what="all five delivered")
        dead = (await admin(s, "GET", "/webhooks/deliveries?upstream=hooks&state=dead")).json()
    assert dead["total"] == 0  # 5 attempts each would have run out without the breaker


async def test_a_redirect_is_not_followed(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, tmp_path: Path
) -> None:
    """Deliveries go only to the configured URL: a 307 to elsewhere is a failed attempt and the
    other server never gets the event."""
    elsewhere = await receivers()
    redirecting = await receivers([307], headers={"location": elsewhere.url})
    secret_env("WH")
    retry = {"attempts": 2, "first_delay": "20ms", "max_delay": "50ms"}
    config = hooks_config(tmp_path, {"ep": endpoint(redirecting.url, "WH")}, retry=retry)
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        msg_id = (await post_event(s, "order.created")).json()["id"]
        await redirecting.wait_for(2)
        await wait_until(lambda: msg_id in redirecting.delivered_ids(), what="the retry")
        first = (await admin(s, "GET", "/webhooks/deliveries?upstream=hooks&state=dead")).json()
    assert redirecting.answered[0] == (msg_id, 307)
    assert elsewhere.received == [] and first["total"] == 0
