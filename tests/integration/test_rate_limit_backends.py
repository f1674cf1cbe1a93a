"""Rate-limit backends in a running sidecar: a third party's type, and what a reload keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

from sidecar import hookimpl
from sidecar.ratelimit import Decision, Limit, RateLimitBackend, RateLimitBackendRegistry
from sidecar.testing import running_sidecar

EPHEMERAL = {
    "admin": {"address": "127.0.0.1:0"},
    "http": {"address": "127.0.0.1:0"},
    "grpc": {"address": "127.0.0.1:0"},
}


class Ledger(RateLimitBackend):
    """A third party's backend: admits the first `allow` calls of each key, ever."""

    instances: list[Ledger] = []  # every instance built, for the test to read

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seen: dict[str, int] = {}
        self.started = self.closed = False
        Ledger.instances.append(self)

    async def start(self) -> None:
        self.started = True

    async def decide(self, key: str, limit: Limit) -> Decision:
        self.seen[key] = self.seen.get(key, 0) + 1
        allowed = self.seen[key] <= limit.burst
        return Decision(allowed, 0, 0.0 if allowed else 30.0)

    async def aclose(self) -> None:
        self.closed = True


class LedgerPlugin:
    @staticmethod
    @hookimpl
    def sidecar_register_ratelimit_backends(registry: RateLimitBackendRegistry) -> None:
        registry.add("ledger", Ledger)


def config(tag: str = "a") -> dict[str, Any]:
    return {
        **EPHEMERAL,
        "ratelimit_backends": {"books": {"type": "ledger", "timeout": "1s"}},
        "upstreams": {
            "api": {
                "adapter": "echo",
                "global_rate_limit": {"backend": "books", "rate": "1/s", "burst": 2},
                "request_headers": {"x-tag": tag},
            }
        },
    }


async def test_a_plugin_backend_decides_global_limits_and_lives_as_long_as_the_sidecar() -> None:
    """`pip install` a backend: it is started with the sidecar, decides, and is closed at drain."""
    Ledger.instances.clear()
    async with running_sidecar(config(), plugins=[LedgerPlugin]) as s:
        assert [b.started for b in Ledger.instances] == [True]
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{s.http_port}/api/x"
            codes = [(await client.get(url)).status_code for _ in range(3)]
            refused = await client.get(url)
    assert codes == [200, 200, 429]
    assert refused.headers["retry-after"] == "30"
    assert Ledger.instances[0].seen == {"api": 4}
    assert Ledger.instances[0].closed


async def test_a_reload_keeps_the_backend_unless_its_config_changed(tmp_path: Path) -> None:
    """Reloading an unrelated key keeps the backend (and its state); changing the backend's
    config builds a new one, and the old one is closed at shutdown."""
    Ledger.instances.clear()
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config("a")))
    async with running_sidecar(
        path.read_text(), config_path=str(path), plugins=[LedgerPlugin]
    ) as s:
        path.write_text(yaml.safe_dump(config("b")))
        assert await s.reload() is True
        assert len(Ledger.instances) == 1
        changed = config("b")
        changed["ratelimit_backends"]["books"]["timeout"] = "2s"
        path.write_text(yaml.safe_dump(changed))
        assert await s.reload() is True
        assert len(Ledger.instances) == 2
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{s.http_port}/api/x")
        assert Ledger.instances[1].seen == {"api": 1} and Ledger.instances[0].seen == {}
        assert not Ledger.instances[0].closed  # calls in flight may still hold it
    assert all(b.closed for b in Ledger.instances)
