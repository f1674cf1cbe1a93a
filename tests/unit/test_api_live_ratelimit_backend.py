"""A plugin reaches a configured rate-limit backend through the public API
(``live_ratelimit_backend``), guarded like the built-in ``global_rate_limit``'s."""

from __future__ import annotations

import pytest

from sidecar import Limit, live_ratelimit_backend
from sidecar.config import parse_config
from sidecar.ratelimit import RateLimitBackendRegistry
from sidecar.ratelimit.live import RESOURCE, LiveBackends
from sidecar.ratelimit.local_backend import LocalBackend
from sidecar.telemetry.metrics import Metrics

CONFIG = """
ratelimit_backends:
  shared: {type: local}
upstreams:
  up: {url: "http://127.0.0.1:1"}
"""


def live() -> LiveBackends:
    registry = RateLimitBackendRegistry()
    registry.add("local", LocalBackend)
    return LiveBackends(registry, Metrics())


async def test_a_plugin_decides_through_the_configured_backend() -> None:
    """The backend named in the config decides: one call at burst 1 passes, the next waits."""
    config = parse_config(CONFIG, "sidecar.yaml")
    resources = {RESOURCE: live()}
    backend = live_ratelimit_backend(resources, config, "shared")
    assert backend.name == "shared" and backend.fail_open
    limit = Limit(rate=1.0, burst=1)
    first, second = await backend.decide("k", limit), await backend.decide("k", limit)
    assert first is not None and first.allowed
    assert second is not None and not second.allowed and second.retry_after > 0
    # the same live object as global_rate_limit's: both share one budget per key
    assert live_ratelimit_backend(resources, config, "shared") is backend


def test_an_unknown_backend_is_refused_naming_the_configured_ones() -> None:
    """A name that is not under ratelimit_backends raises KeyError listing the real names."""
    config = parse_config(CONFIG, "sidecar.yaml")
    with pytest.raises(KeyError, match="'nope'.*shared"):
        live_ratelimit_backend({RESOURCE: live()}, config, "nope")
