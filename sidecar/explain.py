"""``/explain`` and ``sidecar explain``: one route's chain as the config makes it, filter by filter.

For ``route=NAME`` (an explicit route, ``routes[i].name`` or ``route-<i>``) or ``upstream=NAME``
(its ``/<upstream>/`` route), in chain order: each filter's name, phase and order, who
registered it (``core`` or the plugin's name), the settings it reads with their effective
values, and where each came from (:mod:`sidecar.config.provenance`). Values are dumped as
``/config`` dumps them, so secrets appear only as references.

It is computed on demand from the config models and the filter registry, never from the
running chains, so it costs the data path nothing. A built-in filter is listed when the config
turns it on for the route (``rate_limit`` set, ``retry.enabled`` true...); a plugin's filter is
always listed, since its own factory decides per route whether it runs (``decided_by_plugin``).
The egress fronts (HTTP and gRPC) compose the same chain; the inbound listener's routes are not
explained here.
"""

from __future__ import annotations

__all__ = ["ExplainError", "explain", "explain_running", "render_text"]

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from .api import ControlView, FilterRegistry
from .api.phases import phase_of
from .config.models import RouteConfig, SidecarConfig, UpstreamConfig
from .config.provenance import Setting, Source, leaves, section_settings, upstream_setting

#: built-in filters that read one ``upstreams.<u>.<key>`` (named as the filter) and run only
#: where it is on
_UPSTREAM_KEYED = frozenset(
    {
        "verify_hmac",
        "rate_limit",
        "global_rate_limit",
        "concurrency",
        "timeout",
        "fault",
        "retry",
        "circuit_breaker",
        "auth",
        "request_headers",
    }
)
#: built-in filters that read a ``telemetry.<key>`` section
_TELEMETRY_KEYED = {"access_log": "access_log", "tracing": "tracing", "upstream_span": "tracing"}
#: built-in filters of the inbound listener only
_INBOUND_ONLY = frozenset({"peer_allow", "identity_header"})
#: where the plugin sources say a plugin is the sidecar's own
_BUILT_IN = "built-in"


class ExplainError(Exception):
    """A request ``/explain`` cannot answer: ``status`` 400 (bad parameters) or 404."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _find(
    config: SidecarConfig, route: str | None, upstream: str | None
) -> tuple[str, str, UpstreamConfig, RouteConfig | None]:
    if (route is None) == (upstream is None):
        raise ExplainError(400, "give exactly one of route=NAME or upstream=NAME")
    if upstream is not None:
        up = config.upstreams.get(upstream)
        if up is None:
            known = ", ".join(sorted(config.upstreams)) or "none"
            raise ExplainError(404, f"no upstream named {upstream!r} (upstreams: {known})")
        return upstream, upstream, up, None
    names = [rc.name or f"route-{i}" for i, rc in enumerate(config.routes)]
    if route not in names:
        known = ", ".join(names) or "none"
        raise ExplainError(404, f"no route named {route!r} (routes: {known})")
    rc = config.routes[names.index(route)]
    return route, rc.upstream, config.upstreams[rc.upstream], rc


def _on(setting: Setting) -> bool:
    """Whether a policy's effective value turns its filter on."""
    value = setting.value
    if value is None or value == {} or value == []:
        return False
    return not (isinstance(value, dict) and value.get("enabled") is False)


def _settings(
    name: str,
    owner: str,
    config: SidecarConfig,
    up: UpstreamConfig,
    rc: RouteConfig | None,
    sections: Mapping[str, BaseModel],
    declared: Mapping[str, str],
) -> list[Setting] | None:
    """The settings filter ``name`` reads on this route, ``None`` when it does not run here."""
    if name in _UPSTREAM_KEYED and name in UpstreamConfig.model_fields:
        setting = upstream_setting(name, up, rc)
        return [setting] if _on(setting) else None
    if name in _TELEMETRY_KEYED:
        key = _TELEMETRY_KEYED[name]
        section = getattr(config.telemetry, key)
        if section is None or not section.enabled:
            return None
        source: Source = "telemetry" if key in config.telemetry.model_fields_set else "default"
        return [section_settings(f"telemetry.{key}", section, source)]
    if name in _INBOUND_ONLY:
        return None
    # rescue, metrics, and plugin filters: a plugin's filter reads its plugin's sections
    return [
        section_settings(f"plugins.{section}", sections[section], "plugin")
        for section, by in declared.items()
        if by == owner and section in sections
    ]


def explain(
    config: SidecarConfig,
    filters: FilterRegistry,
    *,
    sources: Mapping[str, str],
    sections: Mapping[str, BaseModel],
    declared: Mapping[str, str],
    route: str | None = None,
    upstream: str | None = None,
) -> dict[str, Any]:
    """The chain of ``route`` or ``upstream`` (exactly one) as JSON data. ``sources``: each
    plugin's source (``built-in`` for the sidecar's own); ``sections``: the validated plugin
    sections; ``declared``: which plugin declared each section. Raises :class:`ExplainError`."""
    route_name, upstream_name, up, rc = _find(config, route, upstream)
    chain: list[dict[str, Any]] = []
    for reg in filters.ordered():
        core = sources.get(reg.owner) == _BUILT_IN
        settings = _settings(reg.name, reg.owner, config, up, rc, sections, declared)
        if settings is None:
            continue
        entry: dict[str, Any] = {
            "name": reg.name,
            "phase": phase_of(reg.order).name.lower(),
            "order": reg.order,
            "registered_by": "core" if core else reg.owner,
            "settings": {s.key: s.value for s in settings},
            "sources": {path: src for s in settings for path, src in s.sources.items()},
        }
        if not core:
            entry["decided_by_plugin"] = True
        chain.append(entry)
    return {
        "route": route_name,
        "upstream": upstream_name,
        "explicit_route": rc is not None,
        "filters": chain,
    }


def render_text(explained: Mapping[str, Any]) -> str:
    """:func:`explain`'s answer as a table: one line per filter, one per setting under it; a
    plugin's filter whose sections are all defaults (not in the config) on one line."""
    kind = "route" if explained["explicit_route"] else "implicit route"
    lines = [
        f"{kind} {explained['route']!r} -> upstream {explained['upstream']!r}, outermost first",
        f"{'ORDER':>5}  {'PHASE':<10}  {'FILTER':<18}  {'BY':<10}  {'SETTING':<34}  "
        f"{'VALUE':<24}  FROM",
    ]
    for f in explained["filters"]:
        head = f"{f['order']:>5}  {f['phase']:<10}  {f['name']:<18}  {f['registered_by']:<10}"
        rows = []
        for key, value in f["settings"].items():
            setting = Setting(
                key,
                value,
                {p: s for p, s in f["sources"].items() if p == key or p.startswith(key + ".")},
            )
            rows += leaves(setting)
        if not rows:
            lines.append(head.rstrip())
            continue
        if f["registered_by"] != "core" and all(source == "default" for _, _, source in rows):
            # a plugin's section the config never mentions: its defaults would bury the chain
            # (the JSON answer keeps them); one line names the sections instead
            names = ", ".join(f["settings"])
            lines.append(f"{head}  {names + ': all defaults':<34}  {'-':<24}  default")
            continue
        for i, (path, value, source) in enumerate(rows):
            shown = json.dumps(value)
            prefix = head if i == 0 else " " * len(head)
            lines.append(f"{prefix}  {path:<34}  {shown:<24}  {source}")
    return "\n".join(lines) + "\n"


def explain_running(
    view: ControlView, *, route: str | None = None, upstream: str | None = None
) -> dict[str, Any]:
    """:func:`explain` of the config a sidecar runs (the admin port's ``/explain``)."""
    registries = view.registries
    declared = {reg.name: reg.owner for reg in registries.config.registrations()}
    sections = {
        reg.name: view.plugin_config(reg.name, reg.item)
        for reg in registries.config.registrations()
    }
    return explain(
        view.config,
        registries.filters,
        sources={p.name: p.source for p in view.plugins()},
        sections=sections,
        declared=declared,
        route=route,
        upstream=upstream,
    )
