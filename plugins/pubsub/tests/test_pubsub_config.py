"""The pubsub config as users meet it: `sidecar check` names the file, the key path and the
reason; backends come from a registry other plugins add to through the plugin's hook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sidecar_pubsub
from pydantic import BaseModel
from sidecar_pubsub import Backend, BackendRegistry, Consumer, backend_hookimpl
from sidecar_pubsub.backends_host import load_backends
from sidecar_pubsub.envelope import CloudEvent

from sidecar import RegistryConflict

SIDECAR = Path(sys.executable).with_name("sidecar")

GOOD = """\
upstreams:
  events:
    adapter: pubsub
    url: redis://127.0.0.1:6379/0
    options:
      topics: [orders, orders.dlq]
      subscriptions:
        - {topic: orders, group: shop, path: /events/orders, dead_letter: orders.dlq}
"""


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "sidecar.yaml"
    path.write_text(text)
    return subprocess.run(  # noqa: S603 - the sidecar's own CLI on a file of ours
        [str(SIDECAR), "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_good_config_passes_the_check(tmp_path: Path) -> None:
    """A pubsub upstream with a subscription is accepted by `sidecar check` (no broker needed)."""
    done = check(tmp_path, GOOD)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("old", "new", "where", "reason"),
    [
        (
            "dead_letter: orders.dlq}",
            "dead_letter: orders.dlq, retry: {attempts: 0}}",
            "subscriptions[0].retry.attempts",
            "at least 1",
        ),
        ("options:\n", "options:\n      backend: {type: nats}\n", "backend.type", "unknown"),
        ("options:\n", "options:\n      backend: {maxlen: 0}\n", "backend.maxlen", "greater"),
        ("redis:", "ftp:", "events.url", "no pubsub backend takes ftp://"),
    ],
)
def test_a_bad_config_names_file_key_path_and_reason(
    tmp_path: Path, old: str, new: str, where: str, reason: str
) -> None:
    """`sidecar check` refuses a bad pubsub setting with the file, its key path and why."""
    done = check(tmp_path, GOOD.replace(old, new))
    assert done.returncode == 2, done.stdout
    line = next(x for x in done.stderr.splitlines() if where in x)
    assert line.startswith(f"{tmp_path / 'sidecar.yaml'}: upstreams.events.")
    assert reason in line


class MemoryOptions(BaseModel):
    pass


class MemoryBackend(Backend):
    """A backend of another distribution (here: in memory)."""

    options_model = MemoryOptions
    url_schemes = ("memory",)

    async def publish(self, topic: str, event: CloudEvent) -> None:
        raise NotImplementedError

    async def consumer(self, topic: str, group: str, name: str, claim_after: float) -> Consumer:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


class MemoryPlugin:
    @backend_hookimpl
    def pubsub_register_backends(self, registry: BackendRegistry) -> None:
        registry.add("memory", MemoryBackend)


class StealsRedis:
    @backend_hookimpl
    def pubsub_register_backends(self, registry: BackendRegistry) -> None:
        registry.add("redis", MemoryBackend)


def test_another_plugin_adds_a_backend_through_the_hook() -> None:
    """A backend plugin's class is registered beside the built-ins and picked by url scheme."""
    registry = load_backends([("sidecar-memory", MemoryPlugin())], entry_points=False)
    assert [r.name for r in registry.registrations()] == [
        "redis",
        "rabbitmq",
        "mqtt",
        "kafka",
        "memory",
    ]
    assert registry.by_owner("sidecar-memory")[0].item is MemoryBackend
    assert registry.for_scheme("memory") == "memory"
    assert registry.for_scheme("amqp") == "rabbitmq"


def test_a_backend_name_taken_twice_names_both_plugins() -> None:
    """Two plugins registering one backend name are refused, naming both."""
    with pytest.raises(RegistryConflict, match="'sidecar_pubsub.backends' and by plugin 'x'"):
        load_backends([("x", StealsRedis())], entry_points=False)


def test_the_plugin_registers_its_adapter_config_and_lifespan(plugin_host: Any) -> None:
    """Installing the plugin gives `adapter: pubsub`, `plugins.pubsub` and the subscriptions."""
    host = plugin_host(sidecar_pubsub)
    registries = host.registries
    assert registries.adapters.by_owner("pubsub") or "pubsub" in registries.adapters
    assert "pubsub" in registries.config
    assert "pubsub_subscriptions" in registries.lifespans
