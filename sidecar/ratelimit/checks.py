"""Config checks of ``ratelimit_backends`` that need the registered backend types.

``ratelimit_backends.<name>.type`` must name a registered type; its ``url`` must be one the
type takes (``redis://``...) or absent when it takes none; its own keys are validated with the
type's ``options_model``. Each problem has the file, the key path and the reason, like every
config problem (the loader calls this with the plugin schemas, so ``sidecar check`` says the
same). Not here: that ``global_rate_limit.backend`` names a configured backend
(:mod:`sidecar.config.checks`, which needs no plugins).
"""

from __future__ import annotations

__all__ = ["backend_problems"]

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from ..config.policies import RateLimitBackendConfig
from ..config.problems import validation_problems
from ..config.types import show
from ..errors import ConfigProblem

if TYPE_CHECKING:  # the config loader imports this module: no import cycle through .backend
    from ..api import RateLimitBackend

_COMMON = frozenset(RateLimitBackendConfig.model_fields)


def backend_problems(
    raw: Any, types: Mapping[str, type[RateLimitBackend]], file: str
) -> list[ConfigProblem]:
    """Problems of the ``ratelimit_backends`` section (raw data) against the registered types."""
    problems: list[ConfigProblem] = []
    for name, section in (raw if isinstance(raw, dict) else {}).items():
        if not isinstance(section, dict) or not isinstance(section.get("type"), str):
            continue  # the models report it
        where = f"ratelimit_backends.{name}"
        kind: str = section["type"]
        cls = types.get(kind)
        if cls is None:
            registered = ", ".join(sorted(types)) or "none"
            problems.append(
                ConfigProblem(
                    file,
                    f"{where}.type",
                    f"no rate-limit backend type named {show(kind)} (registered: {registered})",
                )
            )
            continue
        problems += _url_problems(section.get("url"), cls, kind, f"{where}.url", file)
        options = {k: v for k, v in section.items() if k not in _COMMON}
        if cls.options_model is None:
            for key in options:
                problems.append(
                    ConfigProblem(file, f"{where}.{key}", f"unknown key (the {kind} backend)")
                )
        else:
            try:
                cls.options_model.model_validate(options)
            except ValidationError as e:
                problems += validation_problems(
                    e, file, ("ratelimit_backends", name), cls.options_model
                )
    return problems


def _url_problems(
    url: Any, cls: type[RateLimitBackend], kind: str, where: str, file: str
) -> list[ConfigProblem]:
    if not cls.url_schemes:
        if url is None:
            return []
        return [ConfigProblem(file, where, f"the {kind} backend takes no url")]
    schemes = ", ".join(f"{s}://" for s in cls.url_schemes)
    if url is None:
        return [ConfigProblem(file, where, f"required key is missing (the {kind} backend)")]
    if not isinstance(url, str):
        return []  # the models report it
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in cls.url_schemes:
        # the URL itself is not repeated: it may hold a credential
        got = f"{scheme}://" if scheme else "no scheme"
        return [ConfigProblem(file, where, f"the {kind} backend takes {schemes} URLs, got {got}")]
    return []
