"""A sidecar loads what its config uses, when it uses it: grpcio, protobuf, the OpenTelemetry
SDK, redis-py, cryptography and aiohttp stay out of a process whose config does not need them
(each is megabytes of resident memory and tens of milliseconds of start-up), and come in at
start-up when it does (aiohttp: at the first admin call that is not a probe or a scrape). Read
from ``sys.modules`` inside a real ``sidecar run`` (:mod:`.module_probe`).

The sidecar's own modules are checked with the plugins installed beside it disabled; one test
loads every installed plugin too: a plugin that is installed but not configured costs its
registrations, not its libraries."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.testing import SidecarProcess, wait_until
from sidecar.v1 import admin_pb2, admin_pb2_grpc

PROBE = Path(__file__).with_name("module_probe.py")
WAIT = 10.0
#: what the embedded default never needs
OPTIONAL = ("grpc", "grpc_health", "grpc_reflection", "google.protobuf", "opentelemetry", "redis")
OPTIONAL += ("cryptography", "aiohttp")


def embedded_default(*, plugins: bool = False, **extra: Any) -> dict[str, Any]:
    """``sidecar/default.yaml`` on ephemeral ports, no installed plugin (unless ``plugins``),
    plus ``extra``."""
    data = yaml.safe_load(resources.files("sidecar").joinpath("default.yaml").read_text())
    for section in ("admin", "http", "grpc"):
        data[section] = {**data[section], "address": "127.0.0.1:0"}
    if not plugins:
        installed = sorted({ep.name for ep in entry_points(group="sidecar")})
        data["plugins"] = {**data.get("plugins", {}), "disabled": installed}
    for key, value in extra.items():
        data[key] = {**data.get(key, {}), **value}
    return data


@contextmanager
def probed(config: dict[str, Any], tmp_path: Path) -> Iterator[tuple[SidecarProcess, Any]]:
    """A running sidecar, and ``modules()``: the names it has imported, asked for now."""
    ask, out = tmp_path / "ask", tmp_path / "modules.txt"
    env = {"PROBE_ASK": str(ask), "PROBE_OUT": str(out)}
    # the stop below drains at once: what is imported is asked before it, and the wait for the
    # app to go quiet (test_pod_lifecycle's) would add its 2 s default to every test here
    config = {**config, "shutdown": {"app_quiet_period": "0s"}}
    with SidecarProcess(config, env=env, prefix=[sys.executable, str(PROBE)]) as p:

        def modules() -> set[str]:
            out.unlink(missing_ok=True)
            ask.touch()
            wait_until(out.exists, WAIT)
            return set(out.read_text().split())

        yield p, modules
        assert p.terminate() == 0


def loaded(modules: set[str], package: str) -> bool:
    return package in modules or any(m.startswith(package + ".") for m in modules)


def test_the_embedded_default_answers_health_without_grpcio_protobuf_or_the_sdk(
    tmp_path: Path,
) -> None:
    """The embedded default (an HTTP/2 gRPC port, no tracing, no gRPC upstream) starts, and
    answers a gRPC health check, with none of the optional libraries loaded."""
    with probed(embedded_default(), tmp_path) as (p, modules):
        assert [m for m in OPTIONAL if loaded(modules(), m)] == []
        with grpc.insecure_channel(p.grpc_target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=WAIT
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert [m for m in OPTIONAL if loaded(modules(), m)] == []


def test_installed_plugins_that_are_not_configured_load_none_of_their_libraries(
    tmp_path: Path,
) -> None:
    """Every plugin installed beside the sidecar (the event, API and identity plugins under
    plugins/) loads, and with none of them configured none of the optional libraries does."""
    installed = {ep.name for ep in entry_points(group="sidecar")}
    assert {"llm", "pubsub", "webhooks", "vectors"} <= installed  # those that use aiohttp
    with probed(embedded_default(plugins=True), tmp_path) as (_, modules):
        now = modules()
        assert {f"sidecar_{name}" for name in ("llm", "pubsub", "webhooks", "vectors")} <= now
        assert [m for m in OPTIONAL if loaded(now, m)] == []


def test_the_admin_api_on_the_http2_front_loads_protobuf_but_not_grpcio(tmp_path: Path) -> None:
    """The first admin API call loads protobuf (its messages need it), never grpcio."""
    with probed(embedded_default(), tmp_path) as (p, modules):
        with grpc.insecure_channel(p.grpc_target) as channel:
            status = admin_pb2_grpc.AdminStub(channel).GetStatus(
                admin_pb2.GetStatusRequest(), timeout=WAIT
            )
        assert status.state == admin_pb2.STATE_READY
        now = modules()
        assert loaded(now, "google.protobuf")
        assert not loaded(now, "grpc")


@pytest.mark.parametrize(
    ("extra", "needed", "still_out"),
    [
        ({"grpc": {"server": "grpcio"}}, "grpc", "opentelemetry"),
        (
            # the sidecar's own HTTP/2 client calls gRPC upstreams: grpcio stays out
            {"upstreams": {"inventory": {"adapter": "grpc", "url": "grpc://127.0.0.1:9"}}},
            "sidecar.grpc.h2_channel",
            "grpc",
        ),
        (
            {"telemetry": {"tracing": {"endpoint": "http://127.0.0.1:9"}}},
            "opentelemetry.sdk",
            "redis",
        ),
    ],
    ids=["grpcio-server", "grpc-upstream", "tracing"],
)
def test_a_feature_the_config_uses_is_loaded_at_start_up(
    extra: dict[str, Any], needed: str, still_out: str, tmp_path: Path
) -> None:
    """What a config turns on is imported by the time the sidecar is ready (not on a call),
    and only that."""
    with probed(embedded_default(**extra), tmp_path) as (_, modules):
        now = modules()
        assert loaded(now, needed)
        assert not loaded(now, still_out)


def test_probes_and_scrapes_leave_aiohttp_out_and_an_admin_call_loads_it(tmp_path: Path) -> None:
    """/healthz, /readyz and /metrics are answered without aiohttp; /config loads it, once."""
    with probed(embedded_default(), tmp_path) as (p, modules):
        for path in ("/healthz", "/readyz", "/metrics"):
            with urllib.request.urlopen(f"{p.admin_url}{path}", timeout=WAIT) as r:
                assert r.status == 200
        assert not loaded(modules(), "aiohttp")
        with urllib.request.urlopen(f"{p.admin_url}/config", timeout=WAIT) as r:
            assert r.status == 200
        assert loaded(modules(), "aiohttp.web")


def test_an_oauth2_upstream_loads_the_token_client_at_start_up(tmp_path: Path) -> None:
    """An ``oauth2_client_credentials`` upstream imports aiohttp's client by the time it is
    ready (its first call does not pay for the import); the server side stays out."""
    oauth2 = {
        "idp_protected": {
            "url": "http://127.0.0.1:9",
            "auth": {
                "type": "oauth2_client_credentials",
                "token_url": "http://127.0.0.1:9/token",
                "client_id": "test",
                "client_secret": {"file": str(tmp_path / "secret")},
            },
        }
    }
    (tmp_path / "secret").write_text("made-up")
    with probed(embedded_default(upstreams=oauth2), tmp_path) as (_, modules):
        now = modules()
        assert loaded(now, "aiohttp")
        assert not loaded(now, "aiohttp.web")
