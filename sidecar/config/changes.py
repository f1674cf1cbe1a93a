"""What a reload can change in a running sidecar, and what waits for a restart.

A reload swaps the route table: upstreams, routes, policies, plugin sections and the access log
take effect for new calls. Listening sockets, the set of loaded plugins, the log level and
tracing were fixed at start-up, so changes to them are reported and the old values stay in
effect (and in ``/config``, which shows what is running) until the process restarts.
"""

from __future__ import annotations

__all__ = ["RESTART_ONLY", "removes_every_upstream", "split_changes"]

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigProblem
from .models import SidecarConfig

#: Key paths fixed at start-up. A whole section (``http``) covers every key under it: the
#: listener reads its limits when it starts.
RESTART_ONLY: tuple[tuple[str, ...], ...] = (
    ("admin",),
    ("http",),
    # the gRPC listener: its socket and grpcio server options are set when it starts
    ("grpc",),
    ("telemetry", "log_level"),
    # the tracer provider (exporter, sampler, resource) is built once, at start-up
    ("telemetry", "tracing"),
    ("plugins", "disabled"),
    # the inbound listener's socket and limits; its routes, allow-lists, app and certificate
    # files are reloaded (whether it exists at all is a restart-only change too, see below)
    *(
        ("inbound", key)
        for key in (
            "address",
            "max_header_bytes",
            "max_headers",
            "max_uri_bytes",
            "max_request_body",
            "header_timeout",
            "idle_timeout",
        )
    ),
)


def removes_every_upstream(
    old: SidecarConfig, new: SidecarConfig, data: Mapping[str, Any], file: str
) -> ConfigProblem | None:
    """Why a reload that would leave no upstream is refused, unless the file says so itself.

    A file that lost its ``upstreams:`` (cut short by a writer, a bad merge, a template that
    rendered nothing) would turn every call into a 404. Only an explicit ``upstreams: {}`` means
    "serve nothing"; a missing or blank section keeps the old config.
    """
    if not old.upstreams or new.upstreams or data.get("upstreams") == {}:
        return None
    return ConfigProblem(
        file,
        "upstreams",
        f"the new config has no upstreams and would remove all {len(old.upstreams)} "
        "(every call would get 404); write `upstreams: {}` to mean it",
    )


def split_changes(old: SidecarConfig, new: SidecarConfig) -> tuple[SidecarConfig, list[str]]:
    """``new`` with the restart-only keys kept as in ``old``, and the key paths that changed
    there (``http.address``, ``plugins.disabled``): those need a restart."""
    changed: list[str] = []
    effective = new
    if (old.inbound is None) != (new.inbound is None):
        # a listener appears or goes away: its socket is opened at start-up only
        changed.append("inbound")
        effective = effective.model_copy(update={"inbound": old.inbound})
    for path in RESTART_ONLY:
        if path[0] == "inbound" and (old.inbound is None or new.inbound is None):
            continue
        before, after = _get(old, path), _get(new, path)
        if before == after:
            continue
        changed += _leaf_changes(before, after, ".".join(path))
        effective = _put(effective, path, before)
    return effective, changed


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        obj = getattr(obj, part)
    return obj


def _put(obj: Any, path: tuple[str, ...], value: Any) -> Any:
    if len(path) == 1:
        return obj.model_copy(update={path[0]: value})
    inner = _put(getattr(obj, path[0]), path[1:], value)
    return obj.model_copy(update={path[0]: inner})


def _leaf_changes(before: Any, after: Any, where: str) -> list[str]:
    fields = getattr(type(before), "model_fields", None)
    if fields is None or type(before) is not type(after):
        return [where]
    return [f"{where}.{name}" for name in fields if getattr(before, name) != getattr(after, name)]
