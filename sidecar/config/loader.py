"""Load a config: text → data (:mod:`.source`) → frozen models → cross-checks → plugin sections →
secrets.

Every problem is reported with the file, the key path and the reason, and as many at once as can
be found, so ``sidecar check`` prints the whole list (``sidecar.yaml: upstreams.payments.timeout:
expected a duration like "2s", got "fast"``). When the models refuse part of the file, the parts
that did validate are still cross-checked (a route naming an upstream that does not exist), and
the plugin sections are still validated against the models their plugins declare.

Secret references are read once at load (:mod:`.checks`), so a missing or unusable secret is a
config problem at its key path, at start-up, on reload and in ``sidecar check``.
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

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, ConfigProblem
from .checks import cross_check, secret_problems, valid_parts
from .models import SidecarConfig
from .problems import validation_problems
from .source import read_data
from .types import show

DEFAULT_CONFIG_NAME = "<embedded default>"
#: a config file is kilobytes; reading stops past this
MAX_CONFIG_BYTES = 16 << 20


#: A check of the raw config data that needs what the plugins registered (``auth.type`` against
#: the credential provider types, ``ratelimit_backends`` against the backend types):
#: ``check(data, file)`` gives the problems at their key paths.
DataCheck = Callable[[Mapping[str, Any], str], list[ConfigProblem]]


@dataclass(frozen=True)
class PluginSchemas:
    """What the loaded plugins accept: ``plugins.<name>`` models, adapters' option models, and
    the checks that need other registered types (built by the plugin host: ``host.schemas()``).
    The loader knows nothing of auth or rate limits itself."""

    sections: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    #: adapter name → the model of ``upstreams.<u>.options`` (``None``: takes no options).
    adapters: Mapping[str, type[BaseModel] | None] = field(default_factory=dict)
    checks: tuple[DataCheck, ...] = ()


def load_data(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], str]:
    """The file's data after substitution, and the name messages use for it."""
    if path is None:
        text = resources.files("sidecar").joinpath("default.yaml").read_text()
        return read_data(text, DEFAULT_CONFIG_NAME, _env(environ)), DEFAULT_CONFIG_NAME
    name = str(path)
    try:
        with Path(path).open("rb") as f:
            # bounded: a path to a device or an endless pipe must not take the memory
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        reason = f"cannot read the file: {e.strerror}"
        raise ConfigError([ConfigProblem(name, "", reason)]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        reason = f"larger than {MAX_CONFIG_BYTES >> 20} MiB: not a config file"
        raise ConfigError([ConfigProblem(name, "", reason)])
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
    parts = valid_parts(data, config)
    problems += cross_check(parts, file)
    sections: dict[str, BaseModel] = {}
    if schemas is not None:
        sections, more = _plugin_problems(data, schemas, file)
        problems += more
    if resolve_secrets:
        if config is not None:
            problems += secret_problems(config, (), file)
        else:  # the parts that validated: a missing secret is worth knowing in the same pass
            for name, up in parts.upstreams.items():
                problems += secret_problems(up, ("upstreams", name), file)
        for name, section in sections.items():
            problems += secret_problems(section, ("plugins", name), file)
    if problems or config is None:
        raise ConfigError(problems)
    return config


def validate_plugin_sections(
    config: SidecarConfig, schemas: PluginSchemas, file: str
) -> dict[str, BaseModel]:
    """Validate ``plugins.<name>``, ``upstreams.<u>.options`` and the plugin schemas' checks of
    a validated config; returns the validated sections (each plugin's defaults when absent)."""
    data = {
        "plugins": {**(config.plugins.model_extra or {}), "disabled": config.plugins.disabled},
        "upstreams": {
            name: {
                "adapter": up.adapter,
                "options": up.options,
                "auth": up.auth.model_dump() if up.auth is not None else None,
                "request_headers": up.request_headers,
            }
            for name, up in config.upstreams.items()
        },
        "ratelimit_backends": {
            name: {"type": b.type, "url": b.url, **b.options()}
            for name, b in config.ratelimit_backends.items()
        },
    }
    sections, problems = _plugin_problems(data, schemas, file)
    if problems:
        raise ConfigError(problems)
    return sections


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
    for check in schemas.checks:
        problems += check(data, file)
    return sections, problems
