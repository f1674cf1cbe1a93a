"""Fixtures of the webhooks plugin's tests: fresh ``whsec_`` secrets in the environment, a
receiver factory that closes what it started, and the config of a ``hooks`` upstream."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from endpoints import Answer, Receiver


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """``secret_env("NAME")`` puts a new secret in ``$NAME`` and returns its value."""

    def put(name: str) -> str:
        value = new_secret()
        monkeypatch.setenv(name, value)
        return value

    return put


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    """``await receivers(script, ...)`` starts a Receiver, closed after the test."""
    started: list[Receiver] = []

    async def start(script: list[Answer] | None = None, **kw: Any) -> Receiver:
        receiver = await Receiver(script, **kw).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.close()


def hooks_config(store: Path, endpoints: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A config whose upstream ``hooks`` is the webhooks adapter with these endpoints."""
    options.setdefault("retry", {"attempts": 3, "first_delay": "50ms", "max_delay": "200ms"})
    return {
        "upstreams": {
            "hooks": {
                "adapter": "webhooks",
                "options": {"store_dir": str(store), "endpoints": endpoints, **options},
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
