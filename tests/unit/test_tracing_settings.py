"""Tracing settings: the file wins over OTEL_* variables, they win over the defaults; bad values
are refused with the variable's name; the provider built from them samples and names as told."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, StaticSampler, TraceIdRatioBased

from sidecar.config import SecretRef
from sidecar.config.changes import split_changes
from sidecar.config.models import TracingConfig
from sidecar.errors import ConfigError
from sidecar.telemetry.tracing_sdk import build_tracing, make_sampler
from sidecar.telemetry.tracing_settings import TracingSettings, resolve
from sidecar.testing import make_route_context

SECRET = "collector-Tok3n-5e1f"


def settings(env: dict[str, str] | None = None, **config: object) -> TracingSettings:
    s = resolve(TracingConfig.model_validate(config), env or {})
    assert s is not None
    return s


def test_defaults_without_file_keys_or_variables() -> None:
    """With `tracing: {}` the sidecar exports over gRPC to localhost:4317, sampling everything."""
    s = settings()
    assert (s.protocol, s.endpoint) == ("grpc", "http://localhost:4317")
    assert (s.sampler, s.ratio) == ("parentbased_always_on", 1.0)
    assert (s.max_queue_size, s.max_export_batch_size) == (2048, 512)
    assert (s.schedule_delay, s.export_timeout) == (5.0, 10.0)
    assert s.resource["service.name"] == "sidecar"
    assert s.resource["service.version"]
    assert s.headers == {}


def test_otel_variables_fill_the_keys_the_file_leaves_unset() -> None:
    """A platform that configures OTel through the standard variables needs no tracing keys."""
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc,x-tenant=shop",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_BSP_MAX_QUEUE_SIZE": "100",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "500",
        "OTEL_BSP_SCHEDULE_DELAY": "250",
        "OTEL_SERVICE_NAME": "shop-sidecar",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=ignored",
    }
    s = settings(env)
    assert (s.protocol, s.endpoint) == ("http/protobuf", "http://collector:4318/v1/traces")
    assert s.headers == {"authorization": "Bearer abc", "x-tenant": "shop"}
    assert (s.sampler, s.ratio) == ("parentbased_traceidratio", 0.25)
    assert s.export_timeout == 2.5 and s.schedule_delay == 0.25
    # a batch never exceeds the queue it is taken from
    assert (s.max_queue_size, s.max_export_batch_size) == (100, 100)
    assert s.resource["service.name"] == "shop-sidecar"  # OTEL_SERVICE_NAME wins
    assert s.resource["deployment.environment"] == "prod"


def test_the_file_wins_over_the_variables() -> None:
    """A key written in sidecar.yaml is what runs, whatever the environment says."""
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://env:4318/custom",
        "OTEL_TRACES_SAMPLER": "always_off",
        "OTEL_SERVICE_NAME": "from-env",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-env=1",
        "OTEL_BSP_MAX_QUEUE_SIZE": "7",
    }
    s = settings(
        env,
        protocol="grpc",
        endpoint="https://file:4317",
        sample_ratio=0.5,
        service_name="from-file",
        headers={"x-file": "2"},
        max_queue_size=64,
    )
    assert (s.protocol, s.endpoint) == ("grpc", "https://file:4317")
    assert (s.sampler, s.ratio) == ("parentbased_traceidratio", 0.5)
    assert s.resource["service.name"] == "from-file"
    assert s.headers == {"x-file": "2"}
    assert s.max_queue_size == 64


def test_signal_specific_endpoint_is_used_as_given() -> None:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is a full URL: no /v1/traces is added to it."""
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/otlp/traces",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4318",
    }
    assert settings(env).endpoint == "http://c:4318/otlp/traces"
    # a file URL without a path gets the signal path for http/protobuf
    assert settings(protocol="http/protobuf", endpoint="http://c:4318").endpoint == (
        "http://c:4318/v1/traces"
    )


@pytest.mark.parametrize(
    ("env", "config"),
    [
        ({"OTEL_SDK_DISABLED": "true"}, {}),
        ({"OTEL_TRACES_EXPORTER": "none"}, {}),
        ({}, {"enabled": False}),
    ],
)
def test_tracing_off(env: dict[str, str], config: dict[str, object]) -> None:
    """OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none or enabled: false turn tracing off."""
    assert resolve(TracingConfig.model_validate(config), env) is None
    assert resolve(None, {}) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "-3"),
        ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
    ],
)
def test_a_bad_variable_is_refused_by_name(name: str, value: str) -> None:
    """A typo in an OTEL_* variable stops start-up with the variable's name, not a silent
    default."""
    env = {name: value}
    if name == "OTEL_TRACES_SAMPLER_ARG":
        env["OTEL_TRACES_SAMPLER"] = "traceidratio"
    with pytest.raises(ConfigError) as e:
        settings(env)
    assert e.value.problems[0].path == name


def test_a_malformed_header_list_never_shows_its_values() -> None:
    """The header variable usually holds a credential: the error says where, not what."""
    with pytest.raises(ConfigError) as e:
        settings({"OTEL_EXPORTER_OTLP_HEADERS": f"authorization={SECRET},{SECRET}"})
    assert "item 2" in str(e.value)
    assert SECRET not in str(e.value)


def test_collector_headers_may_be_secret_references(monkeypatch: pytest.MonkeyPatch) -> None:
    """An API key for the collector is read from a secret, and never shown in the settings."""
    monkeypatch.setenv("COLLECTOR_KEY", SECRET)
    s = settings(headers={"X-Api-Key": {"env": "COLLECTOR_KEY"}})
    assert s.headers == {"x-api-key": SECRET}
    assert SECRET not in repr(s)
    monkeypatch.delenv("COLLECTOR_KEY")
    with pytest.raises(ConfigError) as e:
        resolve(TracingConfig(headers={"x-api-key": SecretRef(env="COLLECTOR_KEY")}), {}, "s.yaml")
    assert e.value.problems[0].path == "telemetry.tracing.headers.x-api-key"


def test_kubernetes_downward_api_variables_become_resource_attributes() -> None:
    """Spans say which pod, namespace and node they came from when the pod spec passes them."""
    env = {"POD_NAME": "shop-7d9f", "POD_NAMESPACE": "shop", "NODE_NAME": "node-3"}
    r = settings(env).resource
    assert r["k8s.pod.name"] == "shop-7d9f"
    assert r["k8s.namespace.name"] == "shop"
    assert r["k8s.node.name"] == "node-3"
    assert "k8s.pod.uid" not in r
    # the OTel-style names win over the short ones, OTEL_RESOURCE_ATTRIBUTES over both
    env |= {"K8S_POD_NAME": "long-name", "OTEL_RESOURCE_ATTRIBUTES": "k8s.node.name=explicit"}
    r = settings(env).resource
    assert (r["k8s.pod.name"], r["k8s.node.name"]) == ("long-name", "explicit")


def test_samplers_are_the_ones_named() -> None:
    """Each OTEL_TRACES_SAMPLER value builds its sampler; parent-based ones follow the parent."""
    assert isinstance(make_sampler("parentbased_traceidratio", 0.1), ParentBased)
    ratio = make_sampler("traceidratio", 0.1)
    assert isinstance(ratio, TraceIdRatioBased) and ratio.rate == 0.1
    assert isinstance(make_sampler("always_off", 1.0), StaticSampler)
    assert "AlwaysOff" in make_sampler("parentbased_always_off", 1.0).get_description()


def test_provider_built_from_the_environment_uses_its_sampler_and_resource() -> None:
    """OTEL_TRACES_SAMPLER=always_off and OTEL_SERVICE_NAME reach the spans the provider makes."""
    off = build_tracing(settings({"OTEL_TRACES_SAMPLER": "always_off"}), InMemorySpanExporter())
    on = build_tracing(settings({"OTEL_SERVICE_NAME": "env-named"}), InMemorySpanExporter())
    try:
        assert not off.tracer.start_span("x").is_recording()
        span = on.tracer.start_span("x")
        assert span.is_recording()
        span.end()
        assert on.processor.force_flush(5_000)
        exported = on.processor.exporter.get_finished_spans()  # type: ignore[attr-defined]
        assert [s.resource.attributes["service.name"] for s in exported] == ["env-named"]
    finally:
        off.processor.shutdown(1.0)
        on.processor.shutdown(1.0)


def test_a_tracing_change_waits_for_a_restart() -> None:
    """The provider is built once: a reload keeps the running tracing settings and says so."""
    ctx = make_route_context(config={"telemetry": {"tracing": {"sample_ratio": 0.1}}})
    changed = ctx.config.model_copy(
        update={
            "telemetry": ctx.config.telemetry.model_copy(
                update={"tracing": TracingConfig(sample_ratio=0.9)}
            )
        }
    )
    effective, restart = split_changes(ctx.config, changed)
    assert restart == ["telemetry.tracing.sample_ratio"]
    assert effective.telemetry.tracing == ctx.config.telemetry.tracing
