"""The checks the models cannot make alone: across keys, and secrets read once.

Cross-checks run on the parts of the file that validated, so a route naming an unknown upstream
is reported in the same pass as a typo elsewhere. Secrets are read here (``SecretRef.reveal``),
so a missing or unusable one is a problem at its key path; messages name the reference only.
Not here: plugin sections (the loader, which knows the plugins' models).
"""

from __future__ import annotations

__all__ = ["Parts", "cross_check", "secret_problems", "valid_parts"]

import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigProblem
from ..hosts import is_loopback_host, split_host
from .models import RouteConfig, SidecarConfig, UpstreamConfig
from .policies import GlobalRateLimitPolicy, VerifyHmacPolicy
from .source import key_path
from .types import SecretRef, show


@dataclass
class Parts:
    """The parts of the file that validated, for checks across keys when the whole did not."""

    #: every upstream name in the file (``None``: ``upstreams`` is not even a mapping).
    names: set[str] | None
    upstreams: dict[str, UpstreamConfig]
    routes: list[tuple[int, RouteConfig]]
    #: every ``ratelimit_backends`` name in the file (``None``: not even a mapping).
    backends: set[str] | None = None
    #: the hosts of the listeners' addresses (``http.address``...), lower-case, no port.
    own_hosts: frozenset[str] = frozenset()
    #: each ``ratelimit_backends`` entry's ``type``, where it is a string.
    backend_types: dict[str, str] = field(default_factory=dict)


def valid_parts(data: Mapping[str, Any], config: SidecarConfig | None) -> Parts:
    if config is not None:
        return Parts(
            set(config.upstreams),
            dict(config.upstreams),
            list(enumerate(config.routes)),
            set(config.ratelimit_backends),
            _own_hosts(data),
            {n: b.type for n, b in config.ratelimit_backends.items()},
        )
    raw_backends = data.get("ratelimit_backends", {})
    backends = {str(n) for n in raw_backends} if isinstance(raw_backends, dict) else None
    raw_upstreams = data.get("upstreams")
    names = {str(n) for n in raw_upstreams} if isinstance(raw_upstreams, dict) else None
    routes = []
    raw_routes = data.get("routes")
    for i, raw in enumerate(raw_routes if isinstance(raw_routes, list) else []):
        try:
            routes.append((i, RouteConfig.model_validate(raw)))
        except ValidationError:
            pass  # already reported
    types = {
        str(n): b["type"]
        for n, b in (raw_backends.items() if isinstance(raw_backends, dict) else ())
        if isinstance(b, dict) and isinstance(b.get("type"), str)
    }
    return Parts(
        names,
        _valid_entries(raw_upstreams, UpstreamConfig),
        routes,
        backends,
        _own_hosts(data),
        types,
    )


#: The listener addresses whose hosts an app may send as ``Host`` to reach the sidecar.
_LISTENER_ADDRESSES = (
    ("http", "address"),
    ("grpc", "address"),
    ("admin", "address"),
    ("admin", "metrics_address"),
    ("inbound", "address"),
)


def _own_hosts(data: Mapping[str, Any]) -> frozenset[str]:
    hosts = set()
    for section, key in _LISTENER_ADDRESSES:
        raw = data.get(section)
        value = raw.get(key) if isinstance(raw, dict) else None
        if isinstance(value, str):
            hosts.add(split_host(value)[0])
    return frozenset(hosts)


def cross_check(parts: Parts, file: str) -> list[ConfigProblem]:
    problems = _own_address_names(parts, file)
    for name, up in parts.upstreams.items():
        problems += _check_upstream(name, up, file)
        problems += _check_backend(f"upstreams.{name}", up.global_rate_limit, parts, file)
        problems += _check_replay_backend(f"upstreams.{name}", up.verify_hmac, parts, file)
    seen: dict[str, int] = {}
    for i, route in parts.routes:
        where = f"routes[{i}]"
        problems += _check_backend(where, route.global_rate_limit, parts, file)
        problems += _check_replay_backend(where, route.verify_hmac, parts, file)
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


def _own_address_names(parts: Parts, file: str) -> list[ConfigProblem]:
    """An upstream named like the sidecar's own address would capture every call: Host routing
    runs before path routing, and ``http://localhost:15001/payments/`` sends ``Host:
    localhost:15001``. Such names are refused (the URL may still point at localhost)."""
    problems = []
    for name in sorted(parts.names or ()):
        host = name.lower().rstrip(".")
        if is_loopback_host(host) or host in parts.own_hosts:
            problems.append(
                ConfigProblem(
                    file,
                    f"upstreams.{name}",
                    f"{show(name)} is how the app reaches the sidecar itself: Host routing "
                    f"would send every call made through that name to this upstream; name it "
                    f"after its service (its url may still point there)",
                )
            )
    return problems


def _hint(name: str, names: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {show(close[0])}?)"
    return f" (upstreams: {', '.join(sorted(names))})" if names else " (none are configured)"


def _check_backend(
    where: str, policy: GlobalRateLimitPolicy | None, parts: Parts, file: str
) -> list[ConfigProblem]:
    """``global_rate_limit.backend`` names a configured ``ratelimit_backends`` entry."""
    if policy is None or parts.backends is None or policy.backend in parts.backends:
        return []
    names = ", ".join(sorted(parts.backends)) or "none are configured"
    return [
        ConfigProblem(
            file,
            f"{where}.global_rate_limit.backend",
            f"no backend named {show(policy.backend)} under ratelimit_backends ({names})",
        )
    ]


def _check_replay_backend(
    where: str, policy: VerifyHmacPolicy | None, parts: Parts, file: str
) -> list[ConfigProblem]:
    """``verify_hmac.replay_backend`` names a configured ``ratelimit_backends`` entry that can
    hold replays (type ``redis``)."""
    if policy is None or policy.replay_backend is None or parts.backends is None:
        return []
    name = policy.replay_backend
    if name not in parts.backends:
        names = ", ".join(sorted(parts.backends)) or "none are configured"
        reason = f"no backend named {show(name)} under ratelimit_backends ({names})"
    elif parts.backend_types.get(name, "redis") != "redis":
        reason = f"the backend {show(name)} is not of type redis: only Redis holds replays"
    else:
        return []
    return [ConfigProblem(file, f"{where}.verify_hmac.replay_backend", reason)]


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


def secret_problems(obj: Any, loc: tuple[str | int, ...], file: str) -> list[ConfigProblem]:
    """Every secret reference under ``obj`` read once; a model with a ``secret_check(field)``
    method (``verify_hmac``) also has the values of that field's secrets checked."""
    problems = []
    for where, ref, check in _secret_refs(obj, loc, None):
        try:
            value = ref.reveal()
        except LookupError as e:  # the message names the reference, never the value
            problems.append(ConfigProblem(file, key_path(where), str(e)))
            continue
        problem = check(value) if check is not None else None
        if problem is not None:
            problems.append(ConfigProblem(file, key_path(where), f"the secret {ref} {problem}"))
    return problems


#: why a secret's value cannot be used where it goes, or ``None``
_ValueCheck = Callable[[str], "str | None"]


def _secret_refs(
    obj: Any, loc: tuple[str | int, ...], check: _ValueCheck | None
) -> Iterator[tuple[tuple[str | int, ...], SecretRef, _ValueCheck | None]]:
    if isinstance(obj, SecretRef):
        yield loc, obj, check
    elif isinstance(obj, BaseModel):
        checks = getattr(obj, "secret_check", None)
        for name in type(obj).model_fields:
            inner = checks(name) if callable(checks) else None
            yield from _secret_refs(getattr(obj, name), (*loc, name), inner)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _secret_refs(v, (*loc, str(k)), check)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _secret_refs(v, (*loc, i), check)
