"""Load a config: text → data (:mod:`.source`) → frozen models → cross-checks → plugin sections →
secrets.

Every problem is reported with the file, the key path and the reason, and as many at once as can
be found, so ``sidecar check`` prints the whole list (``sidecar.yaml: upstreams.payments.timeout:
expected a duration like "2s", got "fast"``). When the models refuse part of the file, the parts
that did validate are still cross-checked (a route naming an upstream that does not exist), and
the plugin sections are still validated against the models their plugins declare.

Secret references are read once here, so a missing or unusable secret is a config problem at its
key path, at start-up, on reload and in ``sidecar check``; the messages name the reference only.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "PluginSchemas",
    "load_config",
    "load_data",
    "parse_config",
    "validate_data",
    "validate_plugin_sections",
]

import difflib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, ConfigProblem
from .models import RouteConfig, SidecarConfig, UpstreamConfig
from .problems import validation_problems
from .source import key_path, read_data
from .types import SecretRef, show

if TYPE_CHECKING:
    from ..plugins import Registries

DEFAULT_CONFIG_NAME = "<embedded default>"


@dataclass(frozen=True)
class PluginSchemas:
    """What the loaded plugins accept: ``plugins.<name>`` models and adapters' option models."""

    sections: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    #: adapter name → the model of ``upstreams.<u>.options`` (``None``: takes no options).
    adapters: Mapping[str, type[BaseModel] | None] = field(default_factory=dict)

    @classmethod
    def of(cls, registries: Registries) -> PluginSchemas:
        return cls(
            {r.name: r.item for r in registries.config.registrations()},
            {r.name: r.item.options_model for r in registries.adapters.registrations()},
        )


def load_data(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], str]:
    """The file's data after substitution, and the name messages use for it."""
    if path is None:
        text = resources.files("sidecar").joinpath("default.yaml").read_text()
        return read_data(text, DEFAULT_CONFIG_NAME, _env(environ)), DEFAULT_CONFIG_NAME
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        reason = f"cannot read the file: {e.strerror}"
        raise ConfigError([ConfigProblem(name, "", reason)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        reason = f"not UTF-8 text (line {line} has a byte that cannot be decoded)"
        raise ConfigError([ConfigProblem(name, "", reason)]) from None
    return read_data(text, name, _env(environ)), name


def load_config(
    path: str | os.PathLike[str] | None,
    *,
    schemas: PluginSchemas | None = None,
    environ: Mapping[str, str] | None = None,
) -> SidecarConfig:
    """Read and validate ``path`` (the embedded default when ``None``).

    With ``schemas``, plugin sections and adapter options are validated too. Raises
    :class:`ConfigError` listing every problem found.
    """
    data, name = load_data(path, environ)
    return validate_data(data, name, schemas)


def parse_config(
    text: str,
    file: str,
    environ: Mapping[str, str] | None = None,
    *,
    schemas: PluginSchemas | None = None,
    resolve_secrets: bool = True,
) -> SidecarConfig:
    """Like :func:`load_config` for text already read; ``file`` names it in messages."""
    return validate_data(read_data(text, file, _env(environ)), file, schemas, resolve_secrets)


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def validate_data(
    data: Mapping[str, Any],
    file: str,
    schemas: PluginSchemas | None = None,
    resolve_secrets: bool = True,
) -> SidecarConfig:
    """Validate data in the file's shape; raises :class:`ConfigError` with every problem."""
    problems: list[ConfigProblem] = []
    config: SidecarConfig | None
    try:
        config = SidecarConfig.model_validate(data)
    except ValidationError as e:
        config = None
        problems += validation_problems(e, file, model=SidecarConfig)
    parts = _valid_parts(data, config)
    problems += _cross_check(parts, file)
    sections: dict[str, BaseModel] = {}
    if schemas is not None:
        sections, more = _plugin_problems(data, schemas, file)
        problems += more
    if resolve_secrets:
        if config is not None:
            problems += _secret_problems(config, (), file)
        else:  # the parts that validated: a missing secret is worth knowing in the same pass
            for name, up in parts.upstreams.items():
                problems += _secret_problems(up, ("upstreams", name), file)
        for name, section in sections.items():
            problems += _secret_problems(section, ("plugins", name), file)
    if problems or config is None:
        raise ConfigError(problems)
    return config


def validate_plugin_sections(
    config: SidecarConfig,
    models: Mapping[str, type[BaseModel]],
    adapter_models: Mapping[str, type[BaseModel] | None],
    file: str,
) -> dict[str, BaseModel]:
    """Validate ``plugins.<name>`` and ``upstreams.<u>.options`` of a validated config against the
    declared models; returns the validated sections (each plugin's defaults when absent)."""
    data = {
        "plugins": {**(config.plugins.model_extra or {}), "disabled": config.plugins.disabled},
        "upstreams": {
            name: {"adapter": up.adapter, "options": up.options}
            for name, up in config.upstreams.items()
        },
    }
    sections, problems = _plugin_problems(data, PluginSchemas(models, adapter_models), file)
    if problems:
        raise ConfigError(problems)
    return sections


# --- cross-checks: what one key cannot know about another -------------------------------------


@dataclass
class _Parts:
    """The parts of the file that validated, for checks across keys when the whole did not."""

    #: every upstream name in the file (``None``: ``upstreams`` is not even a mapping).
    names: set[str] | None
    upstreams: dict[str, UpstreamConfig]
    routes: list[tuple[int, RouteConfig]]


def _valid_parts(data: Mapping[str, Any], config: SidecarConfig | None) -> _Parts:
    if config is not None:
        return _Parts(set(config.upstreams), dict(config.upstreams), list(enumerate(config.routes)))
    raw_upstreams = data.get("upstreams")
    names = {str(n) for n in raw_upstreams} if isinstance(raw_upstreams, dict) else None
    routes = []
    raw_routes = data.get("routes")
    for i, raw in enumerate(raw_routes if isinstance(raw_routes, list) else []):
        try:
            routes.append((i, RouteConfig.model_validate(raw)))
        except ValidationError:
            pass  # already reported
    return _Parts(names, _valid_entries(raw_upstreams, UpstreamConfig), routes)


def _cross_check(parts: _Parts, file: str) -> list[ConfigProblem]:
    problems = []
    for name, up in parts.upstreams.items():
        problems += _check_upstream(name, up, file)
    seen: dict[str, int] = {}
    for i, route in parts.routes:
        where = f"routes[{i}]"
        if parts.names is not None and route.upstream not in parts.names:
            problems.append(
                ConfigProblem(
                    file,
                    f"{where}.upstream",
                    f"no upstream named {show(route.upstream)}{_hint(route.upstream, parts.names)}",
                )
            )
        m = route.match
        if m.path_prefix is None and m.host is None and not m.headers:
            problems.append(
                ConfigProblem(
                    file, f"{where}.match", "matches nothing: give path_prefix, host or headers"
                )
            )
        if route.prefix_rewrite is not None and m.path_prefix is None:
            problems.append(
                ConfigProblem(
                    file,
                    f"{where}.prefix_rewrite",
                    "rewrites a prefix, but match has no path_prefix",
                )
            )
        if route.name is not None:
            first = seen.setdefault(route.name, i)
            if first != i:
                problems.append(
                    ConfigProblem(
                        file, f"{where}.name", f"{show(route.name)} is also routes[{first}].name"
                    )
                )
    return problems


def _hint(name: str, names: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {show(close[0])}?)"
    return f" (upstreams: {', '.join(sorted(names))})" if names else " (none are configured)"


def _valid_entries(raw: Any, model: type[UpstreamConfig]) -> dict[str, UpstreamConfig]:
    out = {}
    if isinstance(raw, dict):
        for name, value in raw.items():
            try:
                out[name] = model.model_validate(value)
            except ValidationError:
                pass  # already reported
    return out


def _check_upstream(name: str, up: UpstreamConfig, file: str) -> list[ConfigProblem]:
    if up.adapter != "http":
        return []  # other adapters check their own URLs
    where = f"upstreams.{name}"
    if up.url is None:
        return [ConfigProblem(file, f"{where}.url", "required key is missing (the http adapter)")]
    scheme = up.url.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        return [
            ConfigProblem(
                file,
                f"{where}.url",
                f"the http adapter speaks http:// or https://, got {show(up.url)}",
            )
        ]
    if scheme == "http" and up.tls is not None:
        return [ConfigProblem(file, f"{where}.tls", "tls is set but the URL is http://")]
    return []


# --- plugin sections and adapter options ------------------------------------------------------


def _plugin_problems(
    data: Mapping[str, Any], schemas: PluginSchemas, file: str
) -> tuple[dict[str, BaseModel], list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    sections: dict[str, BaseModel] = {}
    plugins = data.get("plugins")
    raw_sections = (
        {k: v for k, v in plugins.items() if k != "disabled"} if isinstance(plugins, dict) else {}
    )
    # a disabled plugin's section may stay in the file; nobody declares it, so it is not checked
    disabled = plugins.get("disabled") if isinstance(plugins, dict) else None
    off = {d for d in disabled if isinstance(d, str)} if isinstance(disabled, list) else set()
    for name in raw_sections:
        if name not in schemas.sections and name not in off:
            declared = ", ".join(sorted(schemas.sections)) or "none"
            problems.append(
                ConfigProblem(
                    file,
                    f"plugins.{name}",
                    f"no loaded plugin declares this section (declared: {declared})",
                )
            )
    for name, model in schemas.sections.items():
        raw = raw_sections.get(name)
        try:
            sections[name] = model.model_validate({} if raw is None else raw)
        except ValidationError as e:
            problems += validation_problems(e, file, ("plugins", name), model)
    upstreams = data.get("upstreams")
    for uname, up in (upstreams if isinstance(upstreams, dict) else {}).items():
        if not isinstance(up, dict):
            continue
        adapter = up.get("adapter", "http")
        if not isinstance(adapter, str):
            continue  # reported by the models
        if adapter not in schemas.adapters:
            loaded = ", ".join(sorted(schemas.adapters))
            problems.append(
                ConfigProblem(
                    file,
                    f"upstreams.{uname}.adapter",
                    f"no adapter named {show(adapter)} (loaded: {loaded})",
                )
            )
            continue
        options = up.get("options")
        model_or_none = schemas.adapters[adapter]
        if model_or_none is None:
            if options:
                problems.append(
                    ConfigProblem(
                        file,
                        f"upstreams.{uname}.options",
                        f"the {adapter} adapter takes no options",
                    )
                )
        elif options is None or isinstance(options, dict):
            try:
                model_or_none.model_validate(options or {})
            except ValidationError as e:
                problems += validation_problems(
                    e, file, ("upstreams", uname, "options"), model_or_none
                )
    return sections, problems


# --- secrets ----------------------------------------------------------------------------------


def _secret_problems(obj: Any, loc: tuple[str | int, ...], file: str) -> list[ConfigProblem]:
    problems = []
    for where, ref in _secret_refs(obj, loc):
        try:
            ref.reveal()
        except LookupError as e:  # the message names the reference, never the value
            problems.append(ConfigProblem(file, key_path(where), str(e)))
    return problems


def _secret_refs(
    obj: Any, loc: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], SecretRef]]:
    if isinstance(obj, SecretRef):
        yield loc, obj
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from _secret_refs(getattr(obj, name), (*loc, name))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _secret_refs(v, (*loc, str(k)))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _secret_refs(v, (*loc, i))
