"""Helpers of the webhooks plugin's tests: fresh ``whsec_`` secrets, the config of a ``hooks``
upstream and its endpoints, and `sidecar check` run on a config."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml
from webhooks_redis import RedisServer

from sidecar.testing import Sidecar


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def redis_queue(server: RedisServer, **settings: Any) -> dict[str, Any]:
    """The options of a Redis queue on ``server`` under a prefix of its own (a fresh queue)."""
    settings.setdefault("claim_idle", "1s")
    prefix = f"t{uuid.uuid4().hex[:12]}:"
    return {"redis": {"url": server.url, "key_prefix": prefix, **settings}}


def hooks_config(
    store: Path | dict[str, Any], endpoints: dict[str, Any], **options: Any
) -> dict[str, Any]:
    """A config whose upstream ``hooks`` is the webhooks adapter with these endpoints; its queue
    is the directory ``store``, or ``store`` is the queue's options (see the ``queue`` fixture)."""
    options.setdefault("retry", {"attempts": 3, "first_delay": "50ms", "max_delay": "200ms"})
    queue = store if isinstance(store, dict) else {"store_dir": str(store)}
    return {
        "upstreams": {
            "hooks": {
                "adapter": "webhooks",
                "options": {**queue, "endpoints": endpoints, **options},
            }
        }
    }


def endpoint(url: str, env: str, events: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    return {"url": url, "events": events or ["order.created"], "secrets": [{"env": env}], **kw}


def run_check(tmp_path: Path, config: dict[str, object], env: dict[str, str]) -> tuple[int, str]:
    """`sidecar check` of ``config`` with only ``env``: its exit code and output."""
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    exe = Path(sys.executable).with_name("sidecar")
    done = subprocess.run(  # noqa: S603
        [str(exe), "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    return done.returncode, done.stdout + done.stderr


async def post_event(s: Sidecar, event_type: str, body: bytes = b'{"n": 1}') -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(
            f"http://127.0.0.1:{s.http_port}/hooks/{event_type}",
            content=body,
            headers={"content-type": "application/json"},
        )


async def admin(s: Sidecar, method: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.request(method, f"http://127.0.0.1:{s.admin_port}{path}")


def nothing_left(queue: dict[str, Any], upstream: str = "hooks") -> bool:
    """Whether the queue holds nothing of any event: no body, no delivery, no stream entry."""
    if "store_dir" in queue:
        root = Path(queue["store_dir"]) / upstream
        return not any((root / "bodies").iterdir()) and not any((root / "pending").iterdir())
    prefix = f"{queue['redis']['key_prefix']}{{{upstream}}}:"
    with redis.Redis.from_url(queue["redis"]["url"]) as client:
        kept = client.hlen(prefix + "bodies") + client.hlen(prefix + "deliveries")
        return int(kept) + int(client.xlen(prefix + "stream")) == 0


def on_free_ports(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the admin and HTTP ports chosen by the OS: a config given as a file's text
    (to be reloaded) keeps its ports, and the defaults may be taken on a shared machine."""
    return {**config, "admin": {"address": "127.0.0.1:0"}, "http": {"address": "127.0.0.1:0"}}
