"""Test helpers for plugin authors (and the sidecar's own tests).

- :func:`isolated_plugin_host`: a plugin host with the built-ins and your plugins, no entry points;
- :func:`make_exchange` and :func:`responder`: drive a filter or adapter with no sockets;
- :func:`provider_context`: what a credential provider is built with, with no sockets;
- :class:`FakeUpstream`: a real HTTP server on 127.0.0.1 that records requests and answers as told;
- :func:`running_sidecar`: a real sidecar in this event loop on ephemeral ports;
- :class:`SidecarProcess`: ``sidecar run`` as a child process (signals, exit codes);
- :class:`RedisServer`: a private ``redis-server`` on a free port (for state kept in Redis);
- :func:`cassette` and :func:`replaying_sidecar`: read a recorded cassette, and run a sidecar
  whose upstream answers from one (docs/testing-plugins.md).

Loaded as a pytest plugin (entry point ``pytest11``), it also provides the fixtures
``plugin_host``, ``fake_upstream``, ``sidecar_factory`` and ``replay_factory``.
"""

from __future__ import annotations

__all__ = [
    "Cassette",
    "FakeUpstream",
    "Interaction",
    "RecordedRequest",
    "RedisServer",
    "Sidecar",
    "SidecarProcess",
    "isolated_plugin_host",
    "make_exchange",
    "cassette",
    "make_route_context",
    "replaying_sidecar",
    "responder",
    "running_sidecar",
    "shared_state",
]

import asyncio
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from aiohttp import web
from pydantic import BaseModel

from .api import AdapterTraits, FrontTraits, ProviderContext, RouteContext, SharedState
from .api.shared import SharedStateBuilder
from .app import Sidecar
from .cassettes.view import Cassette, Interaction
from .config import parse_config, validate_plugin_sections
from .config.models import GrpcListenerConfig
from .exchange import Body, Exchange, Headers, Response
from .kit.redis_server import RedisServer
from .plugins import PluginHost, make_plugin_host
from .telemetry.metrics import Metrics


def isolated_plugin_host(*plugins: object, builtins: bool = True) -> PluginHost:
    """A plugin host with the built-ins (unless ``builtins=False``) and ``plugins``, registered
    under their ``__name__`` (or ``name`` attribute); installed entry points are not loaded."""
    named = [
        (getattr(p, "__name__", None) or getattr(p, "name", None) or repr(p), p) for p in plugins
    ]
    if builtins:
        return make_plugin_host(load_entry_points=False, extra_plugins=named)
    return make_plugin_host(load_entry_points=False, extra_plugins=named, builtins=())


def make_exchange(
    method: str = "GET",
    path: str = "/",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    body: Body = b"",
    *,
    query: str = "",
    client: str = "127.0.0.1:40000",
    upstream: str = "test",
    route: str = "test",
) -> Exchange:
    """An :class:`Exchange` as a listener would build it (header names lower-cased)."""
    if headers is None:
        pairs: list[tuple[str, str]] = []
    elif isinstance(headers, Mapping):
        pairs = [(k.lower(), v) for k, v in headers.items()]
    else:
        pairs = [(k.lower(), v) for k, v in headers]
    length = len(body) if isinstance(body, bytes) else None
    ex = Exchange(
        method,
        path,
        Headers(pairs),
        query=query,
        body=body,
        body_length=length,
        client=client,
        start=time.perf_counter(),
    )
    ex.upstream = upstream
    ex.route = route
    return ex


#: The built-in fronts' traits by name, for :func:`make_route_context` and :func:`on_front`.
def _front_traits(name: str) -> FrontTraits:
    from .grpc.dispatch import GRPC_FRONT
    from .listeners.http import HTTP_FRONT
    from .listeners.inbound import INBOUND_FRONT

    fronts = {f.name: f for f in (HTTP_FRONT, GRPC_FRONT, INBOUND_FRONT)}
    return fronts[name]


def on_front(ctx: RouteContext, front: str | FrontTraits, **changes: Any) -> RouteContext:
    """``ctx`` as a route of another front: a built-in one by name (``"grpc"``, ``"inbound"``)
    or a plugin's traits; ``changes`` replace other fields (``classify=...``)."""
    traits = _front_traits(front) if isinstance(front, str) else front
    return dataclasses.replace(ctx, front=traits, **changes)


def make_route_context(
    upstream: Mapping[str, Any] | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    name: str = "test",
    route: str | None = None,
    metrics: Metrics | None = None,
    rescue_hook: Callable[[Exchange, BaseException], Response | None] | None = None,
    front: str | FrontTraits = "http",
    plugins: Iterable[object] = (),
    host: PluginHost | None = None,
    shared: SharedStateBuilder | None = None,
) -> RouteContext:
    """The :class:`RouteContext` a filter factory gets for upstream ``name`` (no sockets).

    ``upstream`` is that upstream's section (default: a plain ``http`` upstream); ``config`` the
    rest of the file's shape (``telemetry``, ``plugins``...). ``plugins``: the plugins whose
    ``plugins.<name>`` sections ``config`` holds, validated as the sidecar would (then
    ``ctx.plugin_config(name, Model)`` works), or the plugin ``host`` that has them; a section
    without its plugin is an error. Pass
    ``metrics`` to read what the filter recorded, and ``shared`` (:func:`shared_state`) to keep
    ``ctx.shared(...)`` objects across contexts as a running sidecar does (without it, each call
    of ``ctx.shared`` builds a new object).
    """
    data: dict[str, Any] = dict(config or {})
    ups = dict(data.get("upstreams") or {})
    ups[name] = dict(upstream or {"url": "http://127.0.0.1:9"})
    data["upstreams"] = ups
    plugins = tuple(plugins)
    sections: dict[str, BaseModel] = {}
    if plugins or host is not None:
        schemas = (host or isolated_plugin_host(*plugins)).schemas()
        cfg = parse_config(yaml.safe_dump(data), "<test>", schemas=schemas)
        sections = validate_plugin_sections(cfg, schemas, "<test>")
    else:
        cfg = parse_config(yaml.safe_dump(data), "<test>")
        given = [k for k in (cfg.plugins.model_extra or {}) if k != "disabled"]
        if given:
            raise ValueError(
                f"config has plugins.{given[0]}: pass its plugin (make_route_context(plugins="
                f"[...])) so the section is validated and reaches ctx.plugin_config"
            )
    return RouteContext(
        route=route or name,
        upstream_name=name,
        upstream=cfg.upstreams[name],
        config=cfg,
        metrics=metrics if metrics is not None else Metrics(),
        rescue_hook=rescue_hook,
        front=_front_traits(front) if isinstance(front, str) else front,
        adapter=_adapter_traits(cfg.upstreams[name].adapter),
        plugin_sections=sections,
        shared_state=shared,
    )


def shared_state() -> SharedStateBuilder:
    """Per-upstream state kept across the contexts given it (``make_route_context(shared=)``),
    as a running sidecar keeps it across routes; ``.build().get(KEY, upstream)`` reads it."""
    return SharedStateBuilder(SharedState())


def provider_context(
    upstream: str = "test",
    type_name: str = "test",
    *,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> ProviderContext:
    """The :class:`ProviderContext` a credential provider of ``upstream`` gets (no sockets).

    A unit test has no sidecar to own tasks or an HTTP client: ``spawn`` and ``http_session``
    raise (a provider that needs them is tested through :func:`running_sidecar`). Pass
    ``clock``/``wall`` to control time."""

    def no_tasks(coro: Coroutine[Any, Any, Any], name: str) -> NoReturn:
        coro.close()
        raise RuntimeError(f"provider_context: no task can be started here ({name})")

    def no_http_client() -> NoReturn:
        raise RuntimeError("provider_context: no HTTP client here (use running_sidecar)")

    return ProviderContext(
        upstream=upstream,
        type_name=type_name,
        base_path="",
        metrics=metrics if metrics is not None else Metrics(),
        log=logging.getLogger(f"sidecar.test.{type_name}"),
        spawn=no_tasks,
        http_session=no_http_client,
        clock=clock,
        wall=wall,
    )


def _adapter_traits(adapter: str) -> AdapterTraits:
    """The traits of a built-in adapter (a plugin's adapter: the defaults; tests that need its
    own pass ``dataclasses.replace(ctx, adapter=MyAdapter.traits)``)."""
    from .adapters.echo import EchoAdapter
    from .adapters.http import HttpAdapter
    from .grpc.adapter import GrpcAdapter

    builtin = {"http": HttpAdapter, "echo": EchoAdapter, "grpc": GrpcAdapter}
    cls = builtin.get(adapter)
    return cls.traits if cls is not None else AdapterTraits()


def responder(
    status: int = 200,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    seen: list[Exchange] | None = None,
) -> Callable[[Exchange], Awaitable[Response]]:
    """A stub ``call_next`` that answers every exchange the same way and records it in ``seen``."""

    async def call_next(exchange: Exchange) -> Response:
        if seen is not None:
            seen.append(exchange)
        return Response(status, Headers((headers or {}).items()), body)

    return call_next


@dataclass
class RecordedRequest:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[str, str]] = field(default_factory=list)


UpstreamHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeUpstream:
    """An aiohttp server on 127.0.0.1 that records every request.

    By default it answers ``200 ok``; set ``handler`` (an aiohttp handler) to answer otherwise.
    ``async with FakeUpstream() as up: ... up.url ... up.requests``.
    """

    def __init__(self, handler: UpstreamHandler | None = None, *, ssl_context: Any = None) -> None:
        self.handler = handler
        self.requests: list[RecordedRequest] = []
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(
                request.method,
                request.path_qs,
                dict(request.headers),
                body,
                [(k, v) for k, v in request.headers.items()],
            )
        )
        if self.handler is not None:
            return await self.handler(request)
        return web.Response(text="ok")

    async def start(self) -> FakeUpstream:
        app = web.Application(client_max_size=1 << 34)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeUpstream:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


#: the gRPC port tests use unless they name another: many tests run sidecars at once, so none
#: may bind the default (a config dumped from the defaults names it: it counts as unnamed).
_GRPC_TEST_ADDRESS = "127.0.0.1:0"
_GRPC_DEFAULT_ADDRESS = GrpcListenerConfig().address


def _config_text(config: Mapping[str, Any] | str) -> str:
    if isinstance(config, str):
        try:
            data = yaml.safe_load(config)
        except yaml.YAMLError:
            return config  # a test of a broken file
        if isinstance(data, dict) and data.get("grpc") is None:
            return f"{config.rstrip()}\ngrpc: {{address: '{_GRPC_TEST_ADDRESS}'}}\n"
        return config
    data = dict(config)
    data.setdefault("admin", {"address": "127.0.0.1:0"})
    data.setdefault("http", {"address": "127.0.0.1:0"})
    grpc = data.get("grpc")
    if grpc is None:
        data["grpc"] = {"address": _GRPC_TEST_ADDRESS}
    elif isinstance(grpc, Mapping) and grpc.get("address", _GRPC_DEFAULT_ADDRESS) in (
        _GRPC_DEFAULT_ADDRESS,
        "localhost:15002",
    ):
        data["grpc"] = {**grpc, "address": _GRPC_TEST_ADDRESS}
    return yaml.safe_dump(data)


@asynccontextmanager
async def running_sidecar(
    config: Mapping[str, Any] | str,
    *,
    plugins: Iterable[object] = (),
    config_path: str | None = None,
) -> AsyncIterator[Sidecar]:
    """Start a sidecar in this event loop (admin, HTTP and gRPC on ephemeral ports unless given).

    ``config`` is a dict in the file's shape or YAML text. The sidecar drains on exit.
    """
    text = _config_text(config)
    cfg = parse_config(text, config_path or "<test>")
    host = isolated_plugin_host(*plugins)
    sidecar = Sidecar(cfg, config_path=config_path, plugin_host=host)
    await sidecar.start()
    try:
        yield sidecar
    finally:
        await sidecar.drain()


def cassette(path: str | os.PathLike[str]) -> Cassette:
    """The cassette at ``path``, to assert on what was recorded (``.interactions``, ``.find``,
    ``.assert_free_of(secret)``)."""
    return Cassette(path)


@asynccontextmanager
async def replaying_sidecar(
    upstream: str,
    path: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None = None,
    match: Mapping[str, Any] | None = None,
    plugins: Iterable[object] = (),
) -> AsyncIterator[Sidecar]:
    """A running sidecar whose ``upstream`` answers from the cassette at ``path`` (no network).

    ``config`` is the rest of the file's shape (that upstream's section, if given, keeps its
    filters: credentials, plugin settings...); ``match`` the ``cassette.match`` rules.
    """
    data: dict[str, Any] = dict(config or {})
    ups = dict(data.get("upstreams") or {})
    section = dict(ups.get(upstream) or {"url": "http://127.0.0.1:9"})
    section["cassette"] = {"mode": "replay", "path": str(path)}
    if match is not None:
        section["cassette"]["match"] = dict(match)
    ups[upstream] = section
    data["upstreams"] = ups
    async with running_sidecar(data, plugins=plugins) as sidecar:
        yield sidecar


class SidecarProcess:
    """``sidecar run -c FILE`` as a child process; ports are read from its "ready" log line.

    ``with SidecarProcess(config) as p: p.http_url ... p.terminate()``. ``config`` is a dict
    (admin/http/grpc default to ephemeral ports) or YAML text (grpc added on an ephemeral port
    when it has no ``grpc`` section). Output goes to ``p.log_path``.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | str,
        *,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 15.0,
        args: Iterable[str] = (),
        prefix: Iterable[str] = (),
    ) -> None:
        """``args`` follow ``sidecar run -c FILE``; ``prefix`` runs before it (a wrapper such as
        ``("prlimit", "--nofile=256:256")``)."""
        self.dir = Path(tempfile.mkdtemp(prefix="sidecar-test-"))
        self.config_path = self.dir / "sidecar.yaml"
        self.config_path.write_text(_config_text(config))
        self.log_path = self.dir / "stderr.log"
        self.stdout_path = self.dir / "stdout.log"
        self.env = {**os.environ, **(env or {})}
        self.ready_timeout = ready_timeout
        self.args = list(args)
        self.prefix = list(prefix)
        self.proc: subprocess.Popen[bytes] | None = None
        self.http_port = 0
        self.admin_port = 0
        #: the inbound mTLS listener's port, when the config has one (from the "ready" line).
        self.inbound_port = 0
        #: the gRPC listener's port, unless ``grpc.enabled`` is false.
        self.grpc_port = 0
        # with fixed ports, readiness is /readyz answering 200 (works at any log level)
        self._fixed = _fixed_ports(self.config_path.read_text())

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def grpc_target(self) -> str:
        """What a gRPC channel points at: ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> SidecarProcess:
        exe = Path(sys.executable).with_name("sidecar")
        cmd = [*self.prefix, str(exe), "run", "-c", str(self.config_path), *self.args]
        with open(self.log_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=self.env)  # noqa: S603
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            for line in self.log_lines():
                if line.get("msg") == "sidecar ready":
                    self.admin_port = int(str(line["admin"]).rpartition(":")[2])
                    self.http_port = int(str(line["http"]).rpartition(":")[2])
                    if "inbound" in line:
                        self.inbound_port = int(str(line["inbound"]).rpartition(":")[2])
                    if "grpc" in line:
                        self.grpc_port = int(str(line["grpc"]).rpartition(":")[2])
                    return self
            if self._fixed is not None and _answers_ready(self._fixed[0]):
                self.admin_port, self.http_port = self._fixed[1], self._fixed[2]
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"sidecar exited with {self.proc.returncode}:\n{self.log_path.read_text()}"
                )
            time.sleep(0.02)
        self.kill()
        raise TimeoutError(
            f"sidecar not ready in {self.ready_timeout}s:\n{self.log_path.read_text()}"
        )

    def log_lines(self, stdout: bool = False) -> list[dict[str, Any]]:
        """The JSON lines logged so far (stderr: the sidecar's log; stdout: the access log)."""
        path = self.stdout_path if stdout else self.log_path
        out = []
        for raw in path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"msg": raw, "unparsed": True})
        return out

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> SidecarProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _fixed_ports(text: str) -> tuple[str, int, int] | None:
    """``(admin address, admin port, http port)`` when the config names both ports, else None."""
    try:
        data = yaml.safe_load(text) or {}
        admin = str(data["admin"]["address"])
        admin_port = int(admin.rpartition(":")[2])
        http_port = int(str(data["http"]["address"]).rpartition(":")[2])
    except (yaml.YAMLError, KeyError, TypeError, ValueError):
        return None
    return (admin, admin_port, http_port) if admin_port and http_port else None


def _answers_ready(admin: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{admin}/readyz", timeout=1) as r:  # noqa: S310
            return bool(r.status == 200)
    except OSError:  # refused, not ready yet (HTTPError 503), timed out
        return False


# --- pytest fixtures (this module is a pytest11 plugin) ---------------------------------------


@pytest.fixture
def plugin_host() -> Callable[..., PluginHost]:
    """``plugin_host(MyPlugin)``: an isolated plugin host with the built-ins and yours."""
    return isolated_plugin_host


@pytest.fixture
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    """A started :class:`FakeUpstream` answering ``200 ok``; set ``.handler`` to change that."""
    async with FakeUpstream() as up:
        yield up


@pytest.fixture
def sidecar_factory() -> Callable[..., Any]:
    """``async with sidecar_factory(config, plugins=[...]) as s:`` → a running sidecar."""
    return running_sidecar


@pytest.fixture
def replay_factory() -> Callable[..., Any]:
    """``async with replay_factory("users", "tests/cassettes/users.jsonl") as s:`` → a running
    sidecar whose upstream ``users`` answers from that cassette."""
    return replaying_sidecar


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01
) -> None:
    """Poll ``predicate`` until true; raise ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], bool], limit: float = 10.0, interval: float = 0.01
) -> None:
    """Like :func:`wait_until` (``limit`` seconds), without blocking the event loop."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 - polling state that has no event to wait on
            await asyncio.sleep(interval)
