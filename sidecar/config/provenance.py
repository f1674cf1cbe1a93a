"""Where each effective setting of a route comes from: the route, its upstream, or the default.

A route's policies are its upstream's with the route's overrides merged in (a route's ``retry``
replaces the upstream's whole block; see ``RouteConfig.OVERRIDES``). This module does that merge
again, on demand, for one key, and says for every leaf of the result where it came from:
``route`` or ``upstream`` when that section set it explicitly (pydantic's ``model_fields_set``),
``default`` when the model's default stands. A plugin section's keys are ``plugin`` when the
file set them. Values are dumped as ``/config`` dumps them (``model_dump(mode="json")``), so a
secret appears only as its reference.

Not here: which filters a route runs and what settings each reads (:mod:`sidecar.explain`).
Nothing here runs per call: the admin port and ``sidecar explain`` call it.
"""

from __future__ import annotations

__all__ = ["Setting", "Source", "flatten", "leaves", "section_settings", "upstream_setting"]

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from .routes import RouteConfig
from .types import SecretRef
from .upstreams import UpstreamConfig

#: where a setting came from
Source = Literal["default", "upstream", "route", "plugin", "telemetry"]


@dataclass(frozen=True)
class Setting:
    """One config key as a filter sees it: its effective value (JSON data, secrets as
    references) and the source of each leaf under it (``retry.backoff.base`` → ``default``)."""

    key: str
    value: Any
    sources: dict[str, Source]


def _leaf_sources(value: Any, path: str, source: Source, out: dict[str, Source]) -> None:
    """``out[path...]`` for every leaf of ``value``: ``source`` for a key its model set
    explicitly, ``default`` for one left at the model's default."""
    if isinstance(value, BaseModel) and not isinstance(value, SecretRef):
        explicit = value.model_fields_set
        for name in type(value).model_fields:
            sub_source: Source = source if name in explicit else "default"
            _leaf_sources(getattr(value, name), f"{path}.{name}", sub_source, out)
        # a section open to its provider's keys (``auth``): those the file gave, kept raw
        for name in value.model_extra or {}:
            out[f"{path}.{name}"] = source
    else:
        out[path] = source  # a scalar, a list, a mapping, a secret reference: one leaf


def _dumped(model: BaseModel, key: str) -> Any:
    return model.model_dump(mode="json", include={key})[key]


def upstream_setting(key: str, upstream: UpstreamConfig, route: RouteConfig | None) -> Setting:
    """``upstreams.<u>.<key>`` as the route's filters see it, and where each part came from:
    the route's override when it gives one, else the upstream's (explicit or default)."""
    owner: BaseModel = upstream
    source: Source = "upstream" if key in upstream.model_fields_set else "default"
    if route is not None and key in RouteConfig.OVERRIDES and getattr(route, key) is not None:
        owner, source = route, "route"
    value = getattr(owner, key)
    sources: dict[str, Source] = {}
    _leaf_sources(value, key, source, sources)
    return Setting(key, _dumped(owner, key), sources)


def section_settings(key: str, section: BaseModel, source: Source) -> Setting:
    """A whole section (``plugins.hello``, ``telemetry.tracing``): ``source`` for the keys the
    file set, ``default`` for the others."""
    sources: dict[str, Source] = {}
    _leaf_sources(section, key, source, sources)
    return Setting(key, section.model_dump(mode="json"), sources)


def flatten(value: Any, path: str) -> dict[str, Any]:
    """``{"retry.attempts": 2, "retry.backoff.base": 0.025, ...}``: the leaves of dumped JSON
    data by dotted path (a mapping that is a leaf, as ``request_headers``, stays whole when
    ``sources`` names it: see :func:`leaves`)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for k, v in value.items():
            out.update(flatten(v, f"{path}.{k}"))
    else:
        out[path] = value
    return out


def leaves(setting: Setting) -> list[tuple[str, Any, Source]]:
    """``(path, value, source)`` per leaf the sources name, in the model's field order."""
    flat = flatten(setting.value, setting.key)
    out: list[tuple[str, Any, Source]] = []
    for path, source in setting.sources.items():
        if path in flat:
            out.append((path, flat[path], source))
        else:  # a mapping leaf (request_headers) or a model dumped whole (a secret reference)
            out.append((path, _at(setting.value, path, setting.key), source))
    return out


def _at(value: Any, path: str, key: str) -> Any:
    for part in path[len(key) + 1 :].split(".") if path != key else ():
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
