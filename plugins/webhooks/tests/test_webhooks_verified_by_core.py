"""The plugin's deliveries pass the core's inbound check: one sidecar sends with the webhooks
adapter, another verifies with verify_hmac (scheme standard-webhooks). The old plugin section
plugins.webhooks.verify is refused with a pointer to where it went."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import sidecar_webhooks
from webhooks_receiver import Receiver
from webhooks_support import endpoint, hooks_config, run_check

Factory = Callable[..., Any]


async def test_one_sidecar_delivers_what_another_verifies(
    sidecar_factory: Factory,
    receivers: Callable[..., Awaitable[Receiver]],
    secret_env: Any,
    tmp_path: Path,
) -> None:
    """Sidecar A's delivery passes sidecar B's verify_hmac and reaches B's app with the event
    body and its webhook-id."""
    app = await receivers()
    secret_env("SHARED_WH")
    verify = {"scheme": "standard-webhooks", "secrets": [{"env": "SHARED_WH"}]}
    receiving = {"upstreams": {"app": {"url": app.url.rsplit("/", 1)[0], "verify_hmac": verify}}}
    async with sidecar_factory(receiving) as b:
        target = f"http://127.0.0.1:{b.http_port}/app/hooks"
        sending = hooks_config(tmp_path, {"b": endpoint(target, "SHARED_WH")})
        async with sidecar_factory(sending, plugins=[sidecar_webhooks]) as a:
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.post(
                    f"http://127.0.0.1:{a.http_port}/hooks/order.created",
                    content=b'{"order": 7}',
                    headers={"content-type": "application/json"},
                )
            [got] = await app.wait_for(1)
    assert r.status_code == 202
    assert got.headers["webhook-id"] == r.json()["id"]
    assert got.body == b'{"order": 7}'


def test_the_removed_plugin_section_says_where_verification_went(tmp_path: Path) -> None:
    """A config still using plugins.webhooks.verify fails `sidecar check` naming verify_hmac."""
    config = {
        "upstreams": {"app": {"url": "http://127.0.0.1:9"}},
        "plugins": {"webhooks": {"verify": {"app": {"secrets": [{"env": "IN_WH"}]}}}},
    }
    code, out = run_check(tmp_path, config, {})
    assert code == 2
    assert "sidecar.yaml: plugins.webhooks: verify is gone" in out
    assert "verify_hmac with scheme: standard-webhooks" in out
