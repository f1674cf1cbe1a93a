"""`admin.metrics_address`: off unless set, and the one admin address that may leave loopback."""

from __future__ import annotations

import pytest

from sidecar import metrics_port
from sidecar.config.loader import parse_config
from sidecar.errors import ConfigError


def test_off_by_default_and_may_bind_the_pod_address() -> None:
    """Nothing extra listens unless asked; when asked, Prometheus in another pod can reach it."""
    assert parse_config("{}", "<test>").admin.metrics_address is None
    cfg = parse_config("admin: {metrics_address: 0.0.0.0:15020}", "<test>")
    assert cfg.admin.metrics_address == "0.0.0.0:15020"
    with pytest.raises(ConfigError, match="admin.address"):
        parse_config("admin: {address: 0.0.0.0:15000}", "<test>")  # the admin port stays local


def test_serves_only_the_probes_and_the_exposition() -> None:
    """`/config`, `/upstreams` and plugin routes never reach the pod network through it."""
    assert [path for path, _ in metrics_port.METRICS_PORT_ROUTES] == [
        "/metrics",
        "/healthz",
        "/readyz",
    ]


async def test_without_an_address_the_lifespan_opens_nothing() -> None:
    """Unset, the lifespan returns at once: no aiohttp app, no socket."""

    class Config:
        class admin:  # noqa: N801 - the config's shape
            metrics_address = None

    class FakeSidecar:
        config = Config()

    async with metrics_port.metrics_port(FakeSidecar()):  # type: ignore[arg-type]
        pass
