"""A third-party plugin, built and installed with pip, found through its entry point.

The distributions (``plugins/hello``, and ``tests/fixtures/sidecar-broken-plugin``) are built by
pip with the venv's setuptools (offline: ``--no-index --no-build-isolation``) from a copy of their
source and installed with ``--target`` into a directory of their own, which only the ``sidecar``
processes started here see (``PYTHONPATH``). The venv is never modified here, so nothing can leak
into other tests, into a suite running beside this one, or past a test run that was killed before
its teardown. (``scripts/setup --test`` also installs ``plugins/hello`` in the venv, editable, for
its own tests; a copy on ``PYTHONPATH`` is found first, and the same distribution found twice is
loaded once.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sidecar import Exchange, Handler, Response, RouteContext, hookimpl
from sidecar.errors import PluginError
from sidecar.testing import FakeUpstream, SidecarProcess, running_sidecar, wait_until

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "plugins" / "hello"
BROKEN = ROOT / "tests" / "fixtures" / "sidecar-broken-plugin"
SIDECAR = str(Path(sys.executable).with_name("sidecar"))
EPHEMERAL = {
    "admin": {"address": "127.0.0.1:0"},
    "http": {"address": "127.0.0.1:0"},
    "grpc": {"address": "127.0.0.1:0"},
}


def pip_install(distribution: Path, workdir: Path) -> dict[str, str]:
    """Build and install the distribution at ``distribution``; the environment that sees it."""
    # pip builds in the source tree (build/, *.egg-info): build a copy, keep the repo clean; an
    # editable install's metadata in the source tree must not reach the copy
    source = workdir / "src"
    leftovers = shutil.ignore_patterns("*.egg-info", "build", "__pycache__", ".pytest_cache")
    shutil.copytree(distribution, source, ignore=leftovers)
    site = workdir / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    cmd += ["--no-build-isolation", "--target", str(site), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert any(site.glob("*.dist-info/entry_points.txt")), "installed without its entry point"
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path}


@pytest.fixture(scope="module")
def hello_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """plugins/hello installed, for this module's processes only; removed at the end."""
    workdir = tmp_path_factory.mktemp("hello-plugin")
    try:
        yield pip_install(HELLO, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def broken_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """sidecar-broken-plugin installed (it raises where SIDECAR_BROKEN_AT says)."""
    workdir = tmp_path_factory.mktemp("broken-plugin")
    try:
        yield pip_install(BROKEN, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def cli(*args: str, env: dict[str, str], config: Any = None, tmp: Path | None = None) -> Any:
    """Run ``sidecar ARGS [-c config.yaml]`` to completion (bounded)."""
    argv = [SIDECAR, *args]
    if config is not None:
        assert tmp is not None
        path = tmp / "sidecar.yaml"
        path.write_text(yaml.safe_dump({**EPHEMERAL, **config}))
        argv += ["-c", str(path)]
    return subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


@asynccontextmanager
async def sidecar_process(config: dict[str, Any], env: dict[str, str]) -> AsyncIterator[Any]:
    """``sidecar run`` in a child process, started off the event loop so upstreams keep serving."""
    proc = SidecarProcess(config, env=env)
    try:
        await asyncio.to_thread(proc.start)
        yield proc
    finally:
        proc.kill()


@contextlib.contextmanager
def records(logger: str) -> Iterator[list[logging.LogRecord]]:
    """Records logged on ``logger``, whatever its parents' propagation is set to."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    log = logging.getLogger(logger)
    handler = Keep(logging.DEBUG)
    log.addHandler(handler)
    try:
        yield seen
    finally:
        log.removeHandler(handler)


# --- the hello plugin: installed, listed, routed through, validated, disabled ----------------


def test_sidecar_plugins_lists_the_installed_plugin(hello_env: dict[str, str]) -> None:
    """After `pip install`, `sidecar plugins` shows it, its distribution and what it registered."""
    done = cli("plugins", env=hello_env)
    assert done.returncode == 0, done.stderr
    block = done.stdout.split("hello  (sidecar-hello-plugin 0.1.0)\n", 1)[1]
    assert block.startswith("    filter hello (order 500)\n    config plugins.hello\n")


def test_installing_for_this_module_leaves_the_test_environment_untouched(
    broken_env: dict[str, str],
) -> None:
    """Other tests never see a plugin installed here: it is visible only where its path is given."""
    # the broken plugin, not hello: scripts/setup --test installs plugins/hello in the venv itself
    listed = cli("plugins", env={**broken_env, "SIDECAR_BROKEN_AT": "request"})
    assert listed.returncode == 0, listed.stderr
    assert "broken  (sidecar-broken-plugin 0.1.0)" in listed.stdout
    done = cli("plugins", env={})
    assert done.returncode == 0, done.stderr
    assert "broken" not in done.stdout


async def test_calls_are_routed_through_the_plugin_filter(hello_env: dict[str, str]) -> None:
    """A real `sidecar run` loads the plugin: its filter adds `x-hello` from its config section."""
    async with FakeUpstream() as up:
        config = {
            "upstreams": {"shop": {"url": up.url}},
            "plugins": {"hello": {"greeting": "hi from the config"}},
        }
        async with sidecar_process(config, hello_env) as p, httpx.AsyncClient() as client:
            r = await client.get(f"{p.http_url}/shop/items")
            listed = (await client.get(f"{p.admin_url}/plugins")).json()
    assert (r.status_code, r.text) == (200, "ok")
    assert r.headers["x-hello"] == "hi from the config"
    assert up.requests[0].path_qs == "/items"
    hello = next(x for x in listed if x["name"] == "hello")
    assert hello["source"] == "sidecar-hello-plugin 0.1.0"
    assert "filter hello (order 500)" in hello["registered"]


def test_misspelt_plugin_option_fails_check_with_its_key_path(
    hello_env: dict[str, str], tmp_path: Path
) -> None:
    """The plugin's model validates `plugins.hello`: a typo is exit 2 with file and key path."""
    done = cli(
        "check", env=hello_env, config={"plugins": {"hello": {"greting": "hi"}}}, tmp=tmp_path
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{tmp_path / 'sidecar.yaml'}: plugins.hello.greting: unknown key" in done.stderr


async def test_disabled_plugin_is_not_loaded(hello_env: dict[str, str], tmp_path: Path) -> None:
    """`plugins.disabled: [hello]` turns the installed plugin off; its section may stay."""
    config = {
        "upstreams": {"echo": {"adapter": "echo"}},
        "plugins": {"disabled": ["hello"], "hello": {"greeting": "unused"}},
    }
    listed = cli("plugins", env=hello_env, config=config, tmp=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "hello  (disabled by plugins.disabled)\n" in listed.stdout
    assert "filter hello" not in listed.stdout
    async with sidecar_process(config, hello_env) as p, httpx.AsyncClient() as client:
        r = await client.get(f"{p.http_url}/echo/x")
    assert r.status_code == 200
    assert "x-hello" not in r.headers


# --- a plugin that fails: at start-up it stops start-up, later it is logged ------------------


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        ("import", "failed to load: RuntimeError: sidecar_broken fails at import, as told"),
        ("register", "failed in sidecar_register_filters: BrokenOnPurpose: the broken plugin"),
        ("lifespan", "lifespan 'broken-lifespan' failed at start-up: BrokenOnPurpose: the broken"),
    ],
)
def test_plugin_raising_at_start_up_stops_sidecar_run_naming_it(
    broken_env: dict[str, str], tmp_path: Path, at: str, reason: str
) -> None:
    """`sidecar run` exits 1 with one line naming the plugin, wherever it raised at start-up."""
    env = {**broken_env, "SIDECAR_BROKEN_AT": at}
    done = cli("run", env=env, config={"upstreams": {"echo": {"adapter": "echo"}}}, tmp=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1, done.stderr
    assert "plugin 'broken'" in error[0]
    assert reason in error[0]


def test_disabling_a_plugin_that_cannot_even_import_lets_the_sidecar_start(
    broken_env: dict[str, str], tmp_path: Path
) -> None:
    """The way out of a broken plugin: disable it; it is never imported."""
    env = {**broken_env, "SIDECAR_BROKEN_AT": "import"}
    done = cli("check", env=env, config={"plugins": {"disabled": ["broken"]}}, tmp=tmp_path)
    assert done.returncode == 0, done.stderr


async def test_plugin_filter_raising_while_serving_is_logged_and_the_sidecar_keeps_serving(
    broken_env: dict[str, str],
) -> None:
    """A filter error is the app's 500 `internal`; the log names plugin, filter and route."""
    env = {**broken_env, "SIDECAR_BROKEN_AT": "request"}
    config = {"upstreams": {"echo": {"adapter": "echo"}}}
    async with sidecar_process(config, env) as p, httpx.AsyncClient() as client:
        failed = await client.get(f"{p.http_url}/echo/boom")
        after = await client.get(f"{p.http_url}/echo/fine")

        def logged() -> list[dict[str, Any]]:
            return [x for x in p.log_lines() if x.get("plugin") == "broken"]

        await asyncio.to_thread(wait_until, lambda: bool(logged()), 10.0)
        assert p.proc is not None and p.proc.poll() is None
    assert (failed.status_code, failed.headers["x-sidecar-error"]) == (500, "internal")
    assert after.status_code == 200
    [line] = logged()
    assert (line["level"], line["filter"], line["route"]) == ("error", "boom", "echo")
    assert "BrokenOnPurpose: the broken filter raised, as told" in line["exception"]


# --- in-process: lifespans, admin routes and adapters of a plugin -----------------------------


class LifespanPlugin:
    """A plugin whose lifespan fails where told."""

    name = "fragile"

    def __init__(self, fail_on: str) -> None:
        self.fail_on = fail_on

    @hookimpl
    def sidecar_register_lifespans(self, registry: Any) -> None:
        @contextlib.asynccontextmanager
        async def life(sidecar: Any) -> AsyncIterator[None]:
            if self.fail_on == "enter":
                raise OSError("cache directory is read-only")
            yield
            if self.fail_on == "exit":
                raise OSError("could not flush the cache")

        registry.add("cache", life)


async def test_lifespan_raising_at_start_up_stops_start_up_naming_the_plugin() -> None:
    """A lifespan that cannot start: start-up stops with the plugin's and lifespan's names."""
    with pytest.raises(PluginError) as e:
        async with running_sidecar({}, plugins=[LifespanPlugin("enter")]):
            pass
    assert str(e.value) == (
        "plugin 'fragile': lifespan 'cache' failed at start-up: OSError: "
        "cache directory is read-only"
    )


async def test_lifespan_raising_at_shutdown_is_logged_and_shutdown_completes() -> None:
    """A lifespan that fails to exit is logged with its names; the sidecar still stops cleanly."""
    with records("sidecar.plugins") as seen:
        async with running_sidecar({}, plugins=[LifespanPlugin("exit")]) as s:
            pass
    assert s.state == "stopped"
    [record] = seen
    assert record.getMessage() == "plugin 'fragile': lifespan 'cache' failed at shutdown"


class AdminAndAdapterPlugin:
    """A plugin with an admin route and an adapter, both of which raise."""

    name = "gadget"

    @hookimpl
    def sidecar_register_admin_routes(self, registry: Any) -> None:
        async def stats(request: Any) -> Any:
            raise ZeroDivisionError("no samples yet")

        registry.add("GET", "/gadget/stats", stats)

    @hookimpl
    def sidecar_register_adapters(self, registry: Any) -> None:
        from sidecar.api import Adapter

        class GadgetAdapter(Adapter):
            def handler(self, name: str, upstream: Any) -> Handler:
                async def call(exchange: Exchange) -> Response:
                    raise ZeroDivisionError("the gadget adapter divided by zero")

                return call

        registry.add("gadget", GadgetAdapter)


async def test_admin_route_and_adapter_errors_name_their_plugin() -> None:
    """A plugin's admin route answers 500 naming it; its adapter's error is logged with its name."""
    config = {"upstreams": {"g": {"adapter": "gadget"}}}
    with records("sidecar.rescue") as rescued:
        async with running_sidecar(config, plugins=[AdminAndAdapterPlugin()]) as s:
            async with httpx.AsyncClient() as client:
                admin = await client.get(f"http://127.0.0.1:{s.admin_port}/gadget/stats")
                call = await client.get(f"http://127.0.0.1:{s.http_port}/g/x")
                health = await client.get(f"http://127.0.0.1:{s.admin_port}/healthz")
    assert (admin.status_code, admin.json()) == (500, {"error": "internal", "plugin": "gadget"})
    assert (call.status_code, call.headers["x-sidecar-error"]) == (500, "internal")
    assert health.status_code == 200
    assert [r.fields["plugin"] for r in rescued] == ["gadget"]  # type: ignore[attr-defined]


async def test_plugin_author_fixtures_run_the_plugin_in_process(
    fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """`sidecar.testing`'s pytest fixtures run a plugin as the installed one runs (docs example)."""
    from pydantic import BaseModel, ConfigDict

    class Greeting(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        greeting: str = "hello"

    class Hello:
        name = "hello"

        @hookimpl
        def sidecar_declare_config(self, registry: Any) -> None:
            registry.add("hello", Greeting)

        @hookimpl
        def sidecar_register_filters(self, registry: Any) -> None:
            def make(ctx: RouteContext) -> Any:
                text = ctx.plugin_config("hello", Greeting).greeting

                async def hello(exchange: Exchange, call_next: Handler) -> Response:
                    resp = await call_next(exchange)
                    resp.headers.add("x-hello", text)
                    return resp

                return hello

            registry.add("hello", make)

    config = {
        "upstreams": {"up": {"url": fake_upstream.url}},
        "plugins": {"hello": {"greeting": "hey"}},
    }
    async with sidecar_factory(config, plugins=[Hello()]) as s, httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{s.http_port}/up/")
    assert (r.status_code, r.headers["x-hello"]) == (200, "hey")
    assert len(fake_upstream.requests) == 1
