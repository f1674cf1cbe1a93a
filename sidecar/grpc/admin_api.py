"""``sidecar.v1.Admin`` (``proto/sidecar/v1/admin.proto``): status, upstreams and config reload
over gRPC, the same facts the admin port shows (``/readyz``, ``/upstreams``) plus a reload.

Everything is read from the running sidecar's :class:`~sidecar.api.ControlView` when asked:
nothing here is on the request path. ``ListUpstreams`` types the parts of
``describe_upstreams()`` a client branches on (health, breaker state, in-flight calls, rate
limits) and carries the whole entry as JSON in ``details``. ``Reload`` runs
:meth:`~sidecar.api.ControlView.reload_result` (one at a time, like SIGHUP) and answers with what
it says: applied or not, why a config was refused, which changes wait for a restart.

The gRPC port binds loopback only (like the admin port); nothing here is authenticated. Each
method takes its request message and returns its answer; each server of the gRPC port binds
them (:mod:`.service_table`). Not here: the health service (:mod:`.health_service`).
"""

from __future__ import annotations

__all__ = ["AdminApi"]

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..config.types import split_address
from ..filters.circuit_breaker import BREAKER
from ..filters.concurrency import LIMITER as CONCURRENCY
from ..health import HEALTHY, UNHEALTHY, upstream_health
from ..v1 import admin_pb2
from ..version import installed_version

if TYPE_CHECKING:
    from ..api import ControlView

_STATES = {
    "starting": admin_pb2.STATE_STARTING,
    "ready": admin_pb2.STATE_READY,
    "draining": admin_pb2.STATE_DRAINING,
    "stopped": admin_pb2.STATE_STOPPED,
}
_HEALTH = {HEALTHY: admin_pb2.HEALTH_HEALTHY, UNHEALTHY: admin_pb2.HEALTH_UNHEALTHY}
_BREAKER = admin_pb2.CircuitBreaker
_BREAKER_STATES = {
    "closed": _BREAKER.STATE_CLOSED,
    "open": _BREAKER.STATE_OPEN,
    "half-open": _BREAKER.STATE_HALF_OPEN,
}
_RATE_LIMITS = ("rate_limit", "global_rate_limit")
#: bound on the problems one Reload answer carries (a config may have many; the log has all)
MAX_PROBLEMS = 100


class AdminApi:
    """The ``sidecar.v1.Admin`` servicer of one sidecar."""

    def __init__(self, sidecar: ControlView) -> None:
        self._sidecar = sidecar

    async def get_status(self, request: admin_pb2.GetStatusRequest) -> admin_pb2.GetStatusResponse:
        """``GetStatus``: version, state, uptime, config file and the ports listened on."""
        s = self._sidecar
        return admin_pb2.GetStatusResponse(
            version=installed_version(),  # as --version and the dashboard say it
            state=_STATES.get(s.state, admin_pb2.STATE_UNSPECIFIED),
            uptime_seconds=round(s.uptime, 3),
            config_file=s.config_name,
            listeners=[admin_pb2.Listener(name=n, address=a) for n, a in listeners(s)],
        )

    async def list_upstreams(
        self, request: admin_pb2.ListUpstreamsRequest
    ) -> admin_pb2.ListUpstreamsResponse:
        """``ListUpstreams``: each upstream, its health and its policies' live state."""
        s = self._sidecar
        health = upstream_health(s)
        described = s.describe_upstreams()
        out = admin_pb2.ListUpstreamsResponse()
        for name, up in s.config.upstreams.items():
            info: dict[str, Any] = described.get(name, {})
            msg = out.upstreams.add(
                name=name,
                adapter=up.adapter,
                url=up.url or "",
                health=_HEALTH.get(health.get(name, ""), admin_pb2.HEALTH_UNKNOWN),
                services=up.services,
                timeout_seconds=up.timeout or 0.0,
            )
            policies: Mapping[str, Any] = info.get("policies", {})
            _fill_breaker(msg, policies.get(BREAKER.name))
            _fill_concurrency(msg, policies.get(CONCURRENCY.name))
            for scope, state in policies.items():
                if scope.split("@", 1)[0] in _RATE_LIMITS and isinstance(state, Mapping):
                    msg.rate_limits.append(_rate_limit(scope, state))
            # JSON round trip: Struct takes JSON types only (tuples, numbers as keys... do not)
            msg.details.update(json.loads(json.dumps(info, default=str)))
        return out

    async def reload(self, request: admin_pb2.ReloadRequest) -> admin_pb2.ReloadResponse:
        """``Reload``: read the config file again and apply it, or say why not."""
        result = await self._sidecar.reload_result()
        return admin_pb2.ReloadResponse(
            applied=result.applied,
            problems=result.problems[:MAX_PROBLEMS],
            restart_required=result.restart_required,
        )


def listeners(sidecar: ControlView) -> list[tuple[str, str]]:
    """``(name, "host:port")`` of every port the sidecar listens on, in a fixed order."""
    config = sidecar.config
    ports = sidecar.ports
    configured = {
        "admin": config.admin.address,
        "http": config.http.address,
        "grpc": config.grpc.address,
        "inbound": config.inbound.address if config.inbound else "",
    }
    out: list[tuple[str, str]] = []
    for name, address in configured.items():
        port = ports.get(name)
        if port:
            out.append((name, f"{split_address(address)[0]}:{port}"))
    return out


def _fill_breaker(msg: admin_pb2.Upstream, state: Any) -> None:
    if not isinstance(state, Mapping) or "state" not in state:
        return
    b = msg.circuit_breaker
    b.state = _BREAKER_STATES.get(state["state"], _BREAKER.STATE_UNSPECIFIED)
    b.consecutive_failures = int(state.get("consecutive_failures", 0))
    b.trip_after = int(state.get("trip_after", 0))
    b.open_for_seconds = float(state.get("open_for_s", 0.0))
    b.half_open_in_seconds = float(state.get("half_open_in_s", 0.0))


def _fill_concurrency(msg: admin_pb2.Upstream, state: Any) -> None:
    if not isinstance(state, Mapping) or "in_flight" not in state:
        return
    msg.concurrency.in_flight = int(state["in_flight"])
    msg.concurrency.max_in_flight = int(state.get("max_in_flight", 0))


def _rate_limit(scope: str, state: Mapping[str, Any]) -> admin_pb2.RateLimit:
    return admin_pb2.RateLimit(
        scope=scope,
        # a global limit's state names its backend; a local one's does not
        is_global="backend" in state,
        rate=str(state.get("rate", "")),
        burst=int(state.get("burst", 0)),
        key=str(state.get("key", "")),
        shadow=bool(state.get("shadow", False)),
        on_limit=str(state.get("on_limit", "")),
        backend=str(state.get("backend", "")),
    )
