"""What tracing runs with: ``telemetry.tracing`` merged with the standard ``OTEL_*`` variables.

A key set in the file wins; a key left unset takes its environment variable (the OpenTelemetry
SDK specification's names and units: milliseconds for times), then the OTel default. The result,
:class:`TracingSettings`, is plain data: building the provider from it is
:mod:`sidecar.telemetry.tracing`. ``None`` means tracing is off: no ``telemetry.tracing``
section, ``enabled: false``, ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``.

The resource names the sidecar (``service.name``, ``service.version``) and, when the pod spec
passes them through the downward API, its pod, namespace and node (:data:`K8S_ENV`).
``OTEL_RESOURCE_ATTRIBUTES`` wins over those, ``OTEL_SERVICE_NAME`` over it, the file over both.

Bad values (an unknown sampler, a ratio outside 0..1, a malformed header list) are refused with
the variable's name; collector header values are never shown, in errors or in ``repr``.
"""

from __future__ import annotations

__all__ = ["DEFAULT_ENDPOINTS", "K8S_ENV", "SAMPLERS", "TracingSettings", "resolve"]

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from urllib.parse import unquote, urlsplit

from ..config.models import TracingConfig
from ..config.types import SecretRef
from ..errors import ConfigError, ConfigProblem

#: Collector address when neither the file nor the environment names one.
DEFAULT_ENDPOINTS = {
    "grpc": "http://localhost:4317",
    "http/protobuf": "http://localhost:4318/v1/traces",
}
#: ``OTEL_TRACES_SAMPLER`` values understood (the SDK specification's built-in samplers).
SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)
#: Resource attributes from Kubernetes downward-API variables: the first variable set wins.
K8S_ENV: dict[str, tuple[str, ...]] = {
    "k8s.pod.name": ("K8S_POD_NAME", "POD_NAME"),
    "k8s.pod.uid": ("K8S_POD_UID", "POD_UID"),
    "k8s.namespace.name": ("K8S_NAMESPACE_NAME", "POD_NAMESPACE"),
    "k8s.node.name": ("K8S_NODE_NAME", "NODE_NAME"),
}
ENV = "environment"
WHERE = "telemetry.tracing"


@dataclass(frozen=True)
class TracingSettings:
    """Resolved tracing settings; times in seconds."""

    protocol: str
    endpoint: str
    #: ``OTEL_TRACES_SAMPLER`` name; the file's ``sample_ratio`` means parentbased_traceidratio.
    sampler: str
    ratio: float
    resource: dict[str, str]
    export_timeout: float
    max_queue_size: int
    max_export_batch_size: int
    schedule_delay: float
    #: sent to the collector; may hold credentials, so kept out of ``repr``.
    headers: dict[str, str] = field(default_factory=dict, repr=False)


def resolve(
    config: TracingConfig | None, env: Mapping[str, str], source: str = "<config>"
) -> TracingSettings | None:
    """The settings for ``config`` and ``env`` (``os.environ`` in production), ``None`` when off.

    Raises :class:`~sidecar.errors.ConfigError` naming the key or variable that is wrong.
    """
    if config is None or not config.enabled:
        return None
    if _flag(env, "OTEL_SDK_DISABLED"):
        return None
    exporter = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter == "none":
        return None
    if exporter != "otlp":
        raise _env_problem("OTEL_TRACES_EXPORTER", f"{exporter!r}: only otlp or none")
    protocol = config.protocol or _protocol(env)
    queue = config.max_queue_size or _int(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048)
    batch = config.max_export_batch_size or _int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
    sampler, ratio = (
        ("parentbased_traceidratio", config.sample_ratio)
        if config.sample_ratio is not None
        else _sampler(env)
    )
    return TracingSettings(
        protocol=protocol,
        endpoint=_endpoint(config.endpoint, protocol, env, source),
        sampler=sampler,
        ratio=ratio,
        resource=resource_attributes(config.service_name, env),
        export_timeout=config.export_timeout
        or _millis(env, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
        or 10.0,
        max_queue_size=queue,
        # a batch larger than the queue could never fill
        max_export_batch_size=min(batch, queue),
        schedule_delay=config.schedule_delay or _millis(env, "OTEL_BSP_SCHEDULE_DELAY") or 5.0,
        headers=_headers(config, env, source),
    )


def resource_attributes(service_name: str | None, env: Mapping[str, str]) -> dict[str, str]:
    """``service.*``, ``telemetry.sdk.*`` and ``k8s.*`` attributes, in the precedence above."""
    attrs = {
        "service.name": "sidecar",
        "service.version": _version("sidecar"),
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": _version("opentelemetry-sdk"),
    }
    for attribute, names in K8S_ENV.items():
        value = next((env[n] for n in names if env.get(n)), None)
        if value is not None:
            attrs[attribute] = value
    attrs.update(_pairs(env, "OTEL_RESOURCE_ATTRIBUTES"))
    name = service_name or env.get("OTEL_SERVICE_NAME", "").strip()
    if name:
        attrs["service.name"] = name
    return attrs


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:  # running from a source tree
        return "unknown"


def _protocol(env: Mapping[str, str]) -> str:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = env.get(name, "").strip()
        if value:
            if value not in DEFAULT_ENDPOINTS:
                raise _env_problem(name, f"{value!r}: expected grpc or http/protobuf")
            return value
    return "grpc"


def _endpoint(configured: str | None, protocol: str, env: Mapping[str, str], source: str) -> str:
    """The collector URL. For http/protobuf a URL without a path gets ``/v1/traces`` (so
    ``http://collector:4318`` works), as ``OTEL_EXPORTER_OTLP_ENDPOINT`` always does; the
    signal-specific variable is used as given."""
    http = protocol == "http/protobuf"
    specific = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    general = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if configured:
        url, where = configured, ""
    elif specific:
        url, where, http = specific, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", False
    elif general:
        url, where = general, "OTEL_EXPORTER_OTLP_ENDPOINT"
    else:
        return DEFAULT_ENDPOINTS[protocol]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        reason = f"{url!r}: expected an http:// or https:// URL"
        if where:
            raise _env_problem(where, reason)
        raise ConfigError([ConfigProblem(source, f"{WHERE}.endpoint", reason)])
    if http and (where == "OTEL_EXPORTER_OTLP_ENDPOINT" or parts.path in ("", "/")):
        return url.rstrip("/") + "/v1/traces"
    return url


def _sampler(env: Mapping[str, str]) -> tuple[str, float]:
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if name not in SAMPLERS:
        raise _env_problem(
            "OTEL_TRACES_SAMPLER", f"{name!r}: expected one of {', '.join(sorted(SAMPLERS))}"
        )
    ratio = 1.0
    arg = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if arg and name.endswith("traceidratio"):
        try:
            ratio = float(arg)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise _env_problem("OTEL_TRACES_SAMPLER_ARG", f"{arg!r}: expected a ratio 0..1")
    return name, ratio


def _headers(config: TracingConfig, env: Mapping[str, str], source: str) -> dict[str, str]:
    if config.headers:
        out = {}
        for name, value in config.headers.items():
            if isinstance(value, SecretRef):
                try:
                    value = value.reveal()
                except LookupError as e:  # names the reference, never the value
                    raise ConfigError(
                        [ConfigProblem(source, f"{WHERE}.headers.{name}", str(e))]
                    ) from None
            out[name.lower()] = value
        return out
    for name in ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"):
        if env.get(name, "").strip():
            return {k.lower(): v for k, v in _pairs(env, name).items()}
    return {}


def _pairs(env: Mapping[str, str], name: str) -> dict[str, str]:
    """A ``key1=value1,key2=value2`` variable (values percent-encoded, W3C Baggage style)."""
    out: dict[str, str] = {}
    for i, item in enumerate(env.get(name, "").split(",")):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # the position, never the text: OTEL_EXPORTER_OTLP_HEADERS holds credentials
            raise _env_problem(name, f"item {i + 1} is not key=value")
        out[key.strip()] = unquote(value.strip())
    return out


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise _env_problem(name, f"{value!r}: expected a positive integer")
    return int(value)


def _millis(env: Mapping[str, str], *names: str) -> float | None:
    """Seconds from the first of ``names`` that is set (milliseconds, as the spec says)."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise _env_problem(name, f"{value!r}: expected milliseconds, a positive integer")
            return int(value) / 1000
    return None


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() == "true"


def _env_problem(name: str, reason: str) -> ConfigError:
    return ConfigError([ConfigProblem(ENV, name, reason)])
