"""Outbound delivery through a real sidecar to real endpoints on 127.0.0.1: signatures checked
by the independent ``standardwebhooks`` library, retries, dead letters, redelivery,
concurrency, metrics and reloads (the endpoint failure modes are in test_webhooks_failures)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import sidecar_webhooks
import yaml
from standardwebhooks.webhooks import Webhook
from webhooks_receiver import Receiver, wait_until
from webhooks_support import (
    admin,
    endpoint,
    hooks_config,
    nothing_left,
    on_free_ports,
    post_event,
)

Factory = Callable[..., Any]
Receivers = Callable[..., Awaitable[Receiver]]


async def test_an_event_is_delivered_signed_to_every_subscribed_endpoint(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, queue: dict[str, Any]
) -> None:
    """One POST reaches each subscribed endpoint once, signed so standardwebhooks verifies it,
    and leaves nothing queued once delivered (on both queue kinds)."""
    billing, audit, other = await receivers(), await receivers(), await receivers()
    billing_secret, old, new = secret_env("BILLING_WH"), secret_env("OLD_WH"), secret_env("NEW_WH")
    secret_env("OTHER_WH")
    endpoints = {
        "billing": endpoint(billing.url, "BILLING_WH", hex_signature=True),
        "audit": {
            **endpoint(audit.url, "OLD_WH", ["*"]),
            "secrets": [{"env": "OLD_WH"}, {"env": "NEW_WH"}],
        },
        "other": endpoint(other.url, "OTHER_WH", ["user.deleted"]),
    }
    body = b'{"order": 42}'
    async with sidecar_factory(hooks_config(queue, endpoints), plugins=[sidecar_webhooks]) as s:
        r = await post_event(s, "order.created", body)
        assert r.status_code == 202
        answer = r.json()
        assert answer["id"].startswith("msg_")
        assert sorted(answer["endpoints"]) == ["audit", "billing"]
        [got] = await billing.wait_for(1)
        [seen] = await audit.wait_for(1)
        # once both endpoints have it, nothing of the event is left in the queue
        await wait_until(lambda: nothing_left(queue), what="the delivered event is forgotten")
    assert other.received == []
    assert got.body == body and got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == seen.headers["webhook-id"] == answer["id"]
    assert Webhook(billing_secret).verify(got.body, got.headers) == {"order": 42}
    # rotation: both of the audit endpoint's secrets sign, each verifies alone
    assert len(seen.headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        Webhook(secret).verify(seen.body, seen.headers)
    key = Webhook(billing_secret)._whsecret
    expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    assert got.headers["x-webhook-signature"] == expected
    assert "x-webhook-signature" not in seen.headers


async def test_failures_are_retried_until_delivered_or_dead(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, queue: dict[str, Any]
) -> None:
    """500s are retried with backoff until a 2xx; an endpoint that never answers goes dead after
    the last attempt, is listed dead on the admin port, and the metrics count both."""
    flaky = await receivers([500, 500, 200])
    secret = secret_env("WH")
    endpoints = {
        "flaky": endpoint(flaky.url, "WH"),
        "refused": endpoint("http://127.0.0.1:9/nothing-listens", "WH"),
    }
    async with sidecar_factory(hooks_config(queue, endpoints), plugins=[sidecar_webhooks]) as s:
        r = await post_event(s, "order.created")
        assert r.status_code == 202
        attempts = await flaky.wait_for(3)
        assert len({a.headers["webhook-id"] for a in attempts}) == 1
        for a in attempts:  # each attempt is signed afresh, and verifies
            Webhook(secret).verify(a.body, a.headers)
        gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:], strict=False)]
        assert all(gap >= 0.035 for gap in gaps), gaps  # 50 ms ± 20 % jitter, then doubled

        async def refused_is_dead() -> bool:
            listed = (
                await admin(s, "GET", "/webhooks/deliveries?upstream=hooks&state=dead")
            ).json()
            return listed["total"] == 1

        await wait_until(refused_is_dead, what="the refused delivery is dead")
        dead = (await admin(s, "GET", "/webhooks/deliveries?upstream=hooks&state=dead")).json()
        [entry] = dead["deliveries"]
        assert entry["endpoint"] == "refused" and entry["attempts"] == 3
        assert entry["last_error"] == "connection refused or unreachable"
        assert "body" not in entry
        metrics = (await admin(s, "GET", "/metrics")).text
    assert 'sidecar_webhooks_accepted_total{upstream="hooks"} 1.0' in metrics
    assert secret.removeprefix("whsec_") not in metrics + json.dumps(dead)
    assert 'endpoint="flaky",outcome="retry",upstream="hooks"} 2.0' in metrics
    assert 'endpoint="flaky",outcome="delivered",upstream="hooks"} 1.0' in metrics
    assert 'endpoint="refused",outcome="dead",upstream="hooks"} 1.0' in metrics
    assert (
        'sidecar_webhooks_queued{endpoint="refused",state="dead",upstream="hooks"} 1.0' in metrics
    )


async def test_a_dead_delivery_is_redelivered_from_the_admin_port(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, queue: dict[str, Any]
) -> None:
    """A delivery that died can be sent again, with the same webhook-id, by the admin action."""
    failing = await receivers([500])
    secret = secret_env("WH")
    config = hooks_config(
        queue, {"ep": endpoint(failing.url, "WH")}, retry={"attempts": 1, "first_delay": "50ms"}
    )
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        msg_id = (await post_event(s, "order.created")).json()["id"]
        await failing.wait_for(1)

        async def dead_entries() -> list[dict[str, Any]]:
            r = await admin(s, "GET", "/webhooks/deliveries?upstream=hooks&state=dead")
            return list(r.json()["deliveries"])

        await wait_until(dead_entries, what="the delivery died")
        [entry] = await dead_entries()
        assert entry["key"] == f"{msg_id}.ep" and entry["last_error"] == "answered 500"
        r = await admin(s, "POST", f"/webhooks/deliveries/hooks/{entry['key']}/redeliver")
        assert r.status_code == 200
        _, again = await failing.wait_for(2)
        assert (
            await admin(s, "POST", "/webhooks/deliveries/hooks/nope.ep/redeliver")
        ).status_code == 404
    assert again.headers["webhook-id"] == msg_id
    Webhook(secret).verify(again.body, again.headers)


async def test_deliveries_to_one_endpoint_respect_its_concurrency(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, queue: dict[str, Any]
) -> None:
    """With concurrency 2, never more than two deliveries to the endpoint are in flight."""
    held = await receivers(hold=True)
    secret_env("WH")
    config = hooks_config(queue, {"ep": endpoint(held.url, "WH", concurrency=2)})
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        for n in range(6):
            assert (
                await post_event(s, "order.created", json.dumps({"n": n}).encode())
            ).status_code == 202
        await held.wait_for(2)
        for count in range(3, 7):  # one answer lets exactly one more in
            held.release()
            await held.wait_for(count)
        held.release(2)
        await wait_until(lambda: held.in_flight == 0, what="all answered")
    assert held.max_in_flight == 2
    assert sorted(json.loads(r.body)["n"] for r in held.received) == list(range(6))


async def test_the_app_gets_clear_answers_for_what_is_no_event(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, queue: dict[str, Any]
) -> None:
    """GET is 405, a bad event type 404, a too large body 413, an unsubscribed type 202 with no
    endpoints; none is delivered."""
    ep = await receivers()
    secret_env("WH")
    config = hooks_config(queue, {"ep": endpoint(ep.url, "WH")}, max_body="1KiB")
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        async with httpx.AsyncClient(timeout=10) as client:
            base = f"http://127.0.0.1:{s.http_port}/hooks"
            got = await client.get(f"{base}/order.created")
            assert (got.status_code, got.headers["x-sidecar-error"]) == (405, "webhook_method")
            bad = await client.post(f"{base}/a/b", content=b"{}")
            assert (bad.status_code, bad.headers["x-sidecar-error"]) == (
                404,
                "webhook_not_an_event",
            )
            big = await client.post(f"{base}/order.created", content=b"x" * 2048)
            assert big.status_code == 413
        none = await post_event(s, "user.deleted")
        assert (none.status_code, none.json()["endpoints"]) == (202, [])
    assert ep.received == []


async def test_a_reload_applies_changed_endpoints(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, tmp_path: Path
) -> None:
    """After a reload that replaces endpoint a by b, new events go to b, and a's delivery still
    pending is kept as dead (endpoint no longer configured), not lost."""
    a, b = await receivers(default=500), await receivers()
    secret_env("WH")
    retry = {"attempts": 5, "first_delay": "30s", "max_delay": "60s"}
    before = hooks_config(tmp_path / "q", {"a": endpoint(a.url, "WH")}, retry=retry)
    after = hooks_config(tmp_path / "q", {"b": endpoint(b.url, "WH")}, retry=retry)
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(on_free_ports(before)))
    async with sidecar_factory(
        path.read_text(), plugins=[sidecar_webhooks], config_path=str(path)
    ) as s:
        pending_id = (await post_event(s, "order.created")).json()["id"]
        await a.wait_for(1)  # failed once; the next attempt is 30 s away
        path.write_text(yaml.safe_dump(on_free_ports(after)))
        result = await s.reload_result()
        assert result.applied, result
        answer = (await post_event(s, "order.created")).json()
        [got] = await b.wait_for(1)
        dead = (await admin(s, "GET", "/webhooks/deliveries?upstream=hooks&state=dead")).json()
    assert answer["endpoints"] == ["b"] and got.headers["webhook-id"] == answer["id"]
    [entry] = dead["deliveries"]
    assert entry["key"] == f"{pending_id}.a"
    assert entry["last_error"] == "the endpoint is no longer configured"


async def test_an_app_given_webhook_id_makes_posting_again_safe(
    sidecar_factory: Factory, receivers: Receivers, secret_env: Any, queue: dict[str, Any]
) -> None:
    """An event posted twice with the app's own webhook-id is queued once while it is held, and
    delivered under that id; an id that could not name a file is refused with 400."""
    held = await receivers(hold=True)
    secret = secret_env("WH")
    config = hooks_config(queue, {"ep": endpoint(held.url, "WH")})
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        async with httpx.AsyncClient(timeout=10) as client:
            url = f"http://127.0.0.1:{s.http_port}/hooks/order.created"
            mine = {"webhook-id": "order-42-created", "content-type": "application/json"}
            first = (await client.post(url, content=b"{}", headers=mine)).json()
            again = (await client.post(url, content=b"{}", headers=mine)).json()
            bad = await client.post(url, content=b"{}", headers={"webhook-id": "../../etc"})
        [got] = await held.wait_for(1)
        held.release()
        await wait_until(lambda: held.delivered_ids() == {"order-42-created"}, what="delivered")
    assert first == {"id": "order-42-created", "endpoints": ["ep"], "repeat": False}
    assert again == {"id": "order-42-created", "endpoints": ["ep"], "repeat": True}
    assert (bad.status_code, bad.headers["x-sidecar-error"]) == (400, "webhook_bad_id")
    assert len(held.received) == 1
    Webhook(secret).verify(got.body, got.headers)


async def test_an_endpoint_url_can_be_a_secret_by_reference(
    sidecar_factory: Factory,
    receivers: Receivers,
    secret_env: Any,
    tmp_path: Path,
    monkeypatch: Any,
) -> None:
    """A URL given as {env: NAME} is delivered to, and neither /config nor /webhooks shows it."""
    ep = await receivers()
    secret_env("WH")
    monkeypatch.setenv("HOOK_URL", ep.url + "/T0KEN-in-the-path")
    config = hooks_config(tmp_path, {"ep": {**endpoint("", "WH"), "url": {"env": "HOOK_URL"}}})
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        assert (await post_event(s, "order.created")).status_code == 202
        await ep.wait_for(1)
        shown = (await admin(s, "GET", "/config")).text + (await admin(s, "GET", "/webhooks")).text
    assert "T0KEN" not in shown and "(given by reference)" in shown
