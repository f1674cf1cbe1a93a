"""Load a config file: YAML → ``${ENV}`` substitution → frozen models → cross-checks.

Every problem is reported with the file, the key path and the reason, all at once, so
``sidecar check`` can print the whole list (``sidecar.yaml: upstreams.payments.timeout: expected a
duration like "2s", got "fast"``). Plugin sections are validated against the model each plugin
declares, once the plugin host knows which plugins are loaded.
"""

from __future__ import annotations

__all__ = ["DEFAULT_CONFIG_NAME", "load_config", "parse_config", "validate_plugin_sections"]

import os
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, ConfigProblem
from .models import SidecarConfig

DEFAULT_CONFIG_NAME = "<embedded default>"
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(path: str | os.PathLike[str] | None) -> SidecarConfig:
    """Read and validate ``path`` (the embedded default when ``None``).

    Raises :class:`ConfigError` listing every problem.
    """
    if path is None:
        text = resources.files("sidecar").joinpath("default.yaml").read_text()
        return parse_config(text, DEFAULT_CONFIG_NAME)
    name = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError([ConfigProblem(name, "", f"cannot read: {e.strerror}")]) from None
    return parse_config(text, name)


def parse_config(text: str, file: str, environ: Mapping[str, str] | None = None) -> SidecarConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(e, "problem", None) or str(e)
        raise ConfigError([ConfigProblem(file, "", f"not valid YAML: {where}{reason}")]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem(file, "", "expected a mapping of keys at the top")])
    problems: list[ConfigProblem] = []
    raw = _substitute(raw, (), os.environ if environ is None else environ, file, problems)
    if problems:
        raise ConfigError(problems)
    try:
        config = SidecarConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(validation_problems(e, file)) from None
    problems = _cross_check(config, file)
    if problems:
        raise ConfigError(problems)
    return config


def _substitute(
    value: Any,
    loc: tuple[str | int, ...],
    env: Mapping[str, str],
    file: str,
    problems: list[ConfigProblem],
) -> Any:
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(
                ConfigProblem(file, key_path(loc), f"environment variable {name} is not set")
            )
            return ""

        return _ENV.sub(repl, value) if "${" in value else value
    if isinstance(value, dict):
        return {k: _substitute(v, (*loc, str(k)), env, file, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*loc, i), env, file, problems) for i, v in enumerate(value)]
    return value


def key_path(loc: Iterable[str | int]) -> str:
    """``("routes", 0, "upstream")`` → ``routes[0].upstream``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_REASONS = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def validation_problems(
    error: ValidationError, file: str, prefix: tuple[str | int, ...] = ()
) -> list[ConfigProblem]:
    problems = []
    for err in error.errors():
        loc = [
            p
            for p in err["loc"]
            if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
        ]
        reason = _REASONS.get(err["type"])
        if reason is None:
            reason = err["msg"]
            if reason.startswith("Value error, "):
                reason = reason[len("Value error, ") :]
            if err["type"] not in ("duration", "size", "address", "url") and "input" in err:
                shown = err["input"]
                if isinstance(shown, str | int | float | bool) and not isinstance(shown, dict):
                    reason = f"{reason[0].lower()}{reason[1:]}, got {shown!r}"
        problems.append(ConfigProblem(file, key_path((*prefix, *loc)), reason))
    return problems


def _cross_check(config: SidecarConfig, file: str) -> list[ConfigProblem]:
    problems = []
    for name, up in config.upstreams.items():
        if up.adapter == "http" and up.url is None:
            problems.append(
                ConfigProblem(file, f"upstreams.{name}.url", "required for the http adapter")
            )
        if up.url is not None and up.adapter == "http":
            scheme = up.url.split(":", 1)[0]
            if scheme not in ("http", "https"):
                problems.append(
                    ConfigProblem(
                        file,
                        f"upstreams.{name}.url",
                        f'the http adapter speaks http:// or https://, got "{up.url}"',
                    )
                )
            if scheme == "http" and up.tls is not None:
                problems.append(
                    ConfigProblem(
                        file,
                        f"upstreams.{name}.tls",
                        "tls is set but the URL is http://; use https://",
                    )
                )
    for i, route in enumerate(config.routes):
        if route.upstream not in config.upstreams:
            problems.append(
                ConfigProblem(
                    file, f"routes[{i}].upstream", f"no upstream named {route.upstream!r}"
                )
            )
        if route.match.path_prefix is None and route.match.host is None and not route.match.headers:
            problems.append(
                ConfigProblem(
                    file, f"routes[{i}].match", "matches nothing: give path_prefix, host or headers"
                )
            )
    return problems


def validate_plugin_sections(
    config: SidecarConfig,
    models: Mapping[str, type[BaseModel]],
    adapter_models: Mapping[str, type[BaseModel] | None],
    file: str,
) -> dict[str, BaseModel]:
    """Validate ``plugins.<name>`` and ``upstreams.<u>.options`` against the declared models."""
    problems: list[ConfigProblem] = []
    sections: dict[str, BaseModel] = {}
    extra = config.plugins.model_extra or {}
    for name in extra:
        # a disabled plugin's section may stay in the file; nobody declares it, so not checked
        if name not in models and name not in config.plugins.disabled:
            known = ", ".join(sorted(models)) or "none"
            problems.append(
                ConfigProblem(
                    file,
                    f"plugins.{name}",
                    f"no loaded plugin declares this section (declared: {known})",
                )
            )
    for name, model in models.items():
        try:
            sections[name] = model.model_validate(extra.get(name) or {})
        except ValidationError as e:
            problems.extend(validation_problems(e, file, ("plugins", name)))
    for uname, up in config.upstreams.items():
        if up.adapter not in adapter_models:
            known = ", ".join(sorted(adapter_models))
            problems.append(
                ConfigProblem(
                    file,
                    f"upstreams.{uname}.adapter",
                    f"no adapter named {up.adapter!r} (loaded: {known})",
                )
            )
            continue
        options_model = adapter_models[up.adapter]
        if options_model is None:
            if up.options:
                problems.append(
                    ConfigProblem(
                        file,
                        f"upstreams.{uname}.options",
                        f"the {up.adapter} adapter takes no options",
                    )
                )
            continue
        try:
            options_model.model_validate(up.options)
        except ValidationError as e:
            problems.extend(validation_problems(e, file, ("upstreams", uname, "options")))
    if problems:
        raise ConfigError(problems)
    return sections
