"""The sidecar's modules in seven layers, and the one rule between them: a module imports only
from its own layer or below (``TYPE_CHECKING`` and function-local imports included).

Read from the source with :mod:`ast`, nothing is imported. :data:`LAYERS` places every module;
a new module must be placed before this test passes. docs/architecture.md ("Layers") says what
each layer is for.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from enum import IntEnum
from pathlib import Path

SIDECAR = Path(__file__).resolve().parents[2] / "sidecar"


class Layer(IntEnum):
    """Bottom to top: a module may import from its own layer and the ones below."""

    KERNEL = 1
    PRIMITIVES = 2
    API = 3
    EXTENSIONS = 4
    FRONTS = 5
    CONTROL = 6
    ROOT = 7


#: Each module's layer. ``name`` places that module only; ``name.*`` places the package
#: ``name`` and every module under it. The longest match wins.
LAYERS: dict[str, Layer] = {
    # 1 kernel: the call's data types, errors and wire formats; depends on nothing of ours
    "sidecar.errors": Layer.KERNEL,
    "sidecar.exchange": Layer.KERNEL,
    "sidecar.chain": Layer.KERNEL,
    "sidecar.observing": Layer.KERNEL,
    "sidecar.outcomes": Layer.KERNEL,
    "sidecar.http1": Layer.KERNEL,
    "sidecar.hosts": Layer.KERNEL,
    "sidecar.version": Layer.KERNEL,
    "sidecar.build_kind": Layer.KERNEL,
    "sidecar.loops": Layer.KERNEL,
    "sidecar.waiter": Layer.KERNEL,
    "sidecar.fdlimit": Layer.KERNEL,
    "sidecar.injected": Layer.KERNEL,
    "sidecar.deferred_import": Layer.KERNEL,
    "sidecar.answers": Layer.KERNEL,
    "sidecar.flow_control": Layer.KERNEL,
    "sidecar.grpc.wire": Layer.KERNEL,
    # a package's __init__ runs whenever a module under it is imported: sidecar.grpc sits with
    # its lowest module (grpc.wire), as sidecar.tls and sidecar.telemetry do below
    "sidecar.grpc": Layer.KERNEL,
    # our own HTTP/2 (HPACK, frames, connection state): a wire format both sides build on
    "sidecar.http2.*": Layer.KERNEL,
    # 2 primitives: config models, resilience mechanisms, metric families, logs, SPIFFE IDs
    "sidecar.config.*": Layer.PRIMITIVES,
    "sidecar.resilience.*": Layer.PRIMITIVES,
    "sidecar.telemetry": Layer.PRIMITIVES,
    "sidecar.telemetry.metrics": Layer.PRIMITIVES,
    "sidecar.telemetry.families": Layer.PRIMITIVES,
    "sidecar.telemetry.access_writer": Layer.PRIMITIVES,
    "sidecar.telemetry.logs": Layer.PRIMITIVES,
    "sidecar.tls": Layer.PRIMITIVES,
    "sidecar.tls.spiffe": Layer.PRIMITIVES,
    "sidecar.tls.certinfo": Layer.PRIMITIVES,
    # 3 api: the public plugin API (re-exported by the package sidecar)
    "sidecar.api.*": Layer.API,
    # 4 extensions: filters, credentials, rate limits, TLS, telemetry, adapters, upstream I/O
    "sidecar.filters.*": Layer.EXTENSIONS,
    "sidecar.auth.*": Layer.EXTENSIONS,
    "sidecar.ratelimit.*": Layer.EXTENSIONS,
    "sidecar.tls.*": Layer.EXTENSIONS,
    "sidecar.telemetry.*": Layer.EXTENSIONS,
    "sidecar.adapters.*": Layer.EXTENSIONS,
    # record and replay: the wrapper of an upstream's terminal handler, the file, matching
    "sidecar.cassettes.*": Layer.EXTENSIONS,
    "sidecar.upstream.*": Layer.EXTENSIONS,
    "sidecar.grpc.adapter": Layer.EXTENSIONS,
    "sidecar.grpc.channels": Layer.EXTENSIONS,
    "sidecar.grpc.keepalive_limits": Layer.EXTENSIONS,
    # the grpc adapter's own HTTP/2 client (on sidecar.http2): channel, connection, stream,
    # framing, and the call
    "sidecar.grpc.h2_channel": Layer.EXTENSIONS,
    "sidecar.grpc.h2_channel_target": Layer.EXTENSIONS,
    "sidecar.grpc.h2_call_answer": Layer.EXTENSIONS,
    "sidecar.grpc.h2_client_connection": Layer.EXTENSIONS,
    "sidecar.grpc.h2_client_stream": Layer.EXTENSIONS,
    "sidecar.grpc.h2_client_framing": Layer.EXTENSIONS,
    "sidecar.grpc.h2_upstream_call": Layer.EXTENSIONS,
    "sidecar.grpc.metadata": Layer.EXTENSIONS,
    # 5 fronts: the ports calls arrive on, and routing a call to its chain
    "sidecar.routing": Layer.FRONTS,
    "sidecar.app_quiet": Layer.FRONTS,
    "sidecar.listeners.*": Layer.FRONTS,
    "sidecar.grpc.listener": Layer.FRONTS,
    "sidecar.grpc.h2_abuse": Layer.FRONTS,
    "sidecar.grpc.h2_connection": Layer.FRONTS,
    "sidecar.grpc.h2_listener": Layer.FRONTS,
    "sidecar.grpc.h2_messages": Layer.FRONTS,
    "sidecar.grpc.h2_stream": Layer.FRONTS,
    "sidecar.grpc.dispatch": Layer.FRONTS,
    "sidecar.grpc.routes": Layer.FRONTS,
    "sidecar.grpc.front": Layer.FRONTS,
    # the shape of the control plane's gRPC services as the port sees them (handed over by
    # the root when it builds the fronts)
    "sidecar.grpc.control": Layer.FRONTS,
    # 6 control plane: admin and metrics ports, dashboard, health, the sidecar's gRPC API,
    # the plugin host
    "sidecar.admin": Layer.CONTROL,
    "sidecar.admin_routes": Layer.CONTROL,
    "sidecar.control_answers": Layer.CONTROL,
    "sidecar.control_light": Layer.CONTROL,
    "sidecar.control_port": Layer.CONTROL,
    "sidecar.host_guard": Layer.CONTROL,
    "sidecar.metrics_port": Layer.CONTROL,
    "sidecar.dashboard.*": Layer.CONTROL,
    "sidecar.health": Layer.CONTROL,
    "sidecar.grpc.services": Layer.CONTROL,
    "sidecar.grpc.admin_api": Layer.CONTROL,
    "sidecar.grpc.health_service": Layer.CONTROL,
    "sidecar.grpc.health_codec": Layer.CONTROL,
    "sidecar.grpc.reflection_service": Layer.CONTROL,
    "sidecar.grpc.service_table": Layer.CONTROL,
    "sidecar.grpc.services_grpcio": Layer.CONTROL,
    "sidecar.v1.*": Layer.CONTROL,
    "sidecar.plugins": Layer.CONTROL,
    "sidecar.blame": Layer.CONTROL,
    "sidecar.preflight": Layer.CONTROL,
    # /explain and `sidecar explain`: a route's chain and its settings' sources, from the config
    "sidecar.explain": Layer.CONTROL,
    # the registrations made into every front's chains (reads the plugin host, used by app)
    "sidecar.composition": Layer.CONTROL,
    "sidecar.front_guard": Layer.CONTROL,
    # what operators see of the policies' live state (/upstreams, scrape-time gauges): it reads
    # the api's SharedState and serves the admin port, so it is control plane, not a mechanism
    "sidecar.resilience.views": Layer.CONTROL,
    # 7 root: the composition (Sidecar), its process lifecycle, the CLIs, the test helpers
    "sidecar": Layer.ROOT,
    "sidecar.app": Layer.ROOT,
    "sidecar.lifecycle": Layer.ROOT,
    "sidecar.cli": Layer.ROOT,
    "sidecar.testing": Layer.ROOT,
    # the plugin authors' kit: `sidecar plugin new` and the test servers sidecar.testing offers
    "sidecar.kit.*": Layer.ROOT,
    # contract tests: a Pact replayed through a running sidecar (sidecar contract ...)
    "sidecar.contract.*": Layer.ROOT,
    "sidecar.k8s.*": Layer.ROOT,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SIDECAR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


#: Every module under sidecar/ (dotted name → file).
MODULES: dict[str, Path] = {module_name(p): p for p in sorted(SIDECAR.rglob("*.py"))}


def layer_of(module: str) -> Layer | None:
    """The layer :data:`LAYERS` puts ``module`` in (``None``: placed nowhere)."""
    best: tuple[int, Layer] | None = None
    for key, layer in LAYERS.items():
        if key.endswith(".*"):
            package = key[:-2]
            hit = module == package or module.startswith(package + ".")
            length = len(package)
        else:
            hit = module == key
            length = len(key) + 1  # an exact entry beats the package entry of the same name
        if hit and (best is None or length > best[0]):
            best = (length, layer)
    return best[1] if best is not None else None


def imports_of(module: str) -> Iterator[tuple[int, str]]:
    """``(line, target)`` for each ``sidecar.*`` module that ``module`` imports."""
    path = MODULES[module]
    return imports_in(path.read_text(), module, is_package=path.name == "__init__.py")


def imports_in(source: str, module: str, *, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, target)`` for each ``sidecar.*`` import anywhere in ``source`` (``TYPE_CHECKING``
    blocks, functions, ``try``), relative imports resolved against ``module``. ``from X import
    a`` targets ``X.a`` when that is a module, else ``X``."""
    tree = ast.parse(source, module)
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "sidecar" or alias.name.startswith("sidecar."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                source_module = f"{base}.{node.module}" if node.module else base
            else:
                source_module = node.module or ""
            if not (source_module == "sidecar" or source_module.startswith("sidecar.")):
                continue
            for alias in node.names:
                sub = f"{source_module}.{alias.name}"
                yield node.lineno, sub if sub in MODULES else source_module


def describe(module: str) -> str:
    layer = layer_of(module)
    return f"{module} ({layer.name.lower() if layer is not None else 'no layer'})"


WALKED = """
from __future__ import annotations
import json
from typing import TYPE_CHECKING
from . import retry
from ..chain import compose
from .. import errors, __version__
import sidecar.api.phases
if TYPE_CHECKING:
    from ..app import Sidecar
def build() -> None:
    from ..listeners.http import HTTP_FRONT
try:
    from sidecar.testing import make_exchange
except ImportError:
    pass
"""


def test_the_walker_sees_every_kind_of_import() -> None:
    """Relative, TYPE_CHECKING, function-local and guarded imports all count (else the rule
    would be blind to them), and ``from X import a`` names the module ``X.a`` when there is one."""
    found = {t for _, t in imports_in(WALKED, "sidecar.filters.timeout", is_package=False)}
    assert found == {
        "sidecar.filters.retry",
        "sidecar.chain",
        "sidecar.errors",
        "sidecar",  # __version__ is the package's attribute
        "sidecar.api.phases",
        "sidecar.app",
        "sidecar.listeners.http",
        "sidecar.testing",
    }
    # in a package's __init__, ``.`` is the package itself
    in_package = {t for _, t in imports_in(WALKED, "sidecar.filters", is_package=True)}
    assert "sidecar.filters.retry" in in_package and "sidecar.errors" in in_package


def test_every_module_is_in_a_layer() -> None:
    """A new module is placed in a layer (here, and in docs/architecture.md) before it lands."""
    unplaced = [m for m in MODULES if layer_of(m) is None]
    assert not unplaced, "modules in no layer (add them to LAYERS):\n" + "\n".join(unplaced)


def test_every_layer_entry_names_a_module() -> None:
    """The table names only modules that exist, so a renamed module cannot keep a stale place."""

    def exists(key: str) -> bool:
        if key.endswith(".*"):  # a package, namespace packages (no __init__) included
            return any(m == key[:-2] or m.startswith(key[:-1]) for m in MODULES)
        return key in MODULES

    stale = [key for key in LAYERS if not exists(key)]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


def test_a_package_sits_no_higher_than_its_modules() -> None:
    """Importing any module runs its package's __init__, so the package is no higher than the
    lowest module under it (the root package ``sidecar`` is the one exception: it re-exports
    the plugin API)."""
    wrong = []
    for name, path in MODULES.items():
        if path.name != "__init__.py" or name == "sidecar":
            continue
        package = layer_of(name)
        below = [layer_of(m) for m in MODULES if m.startswith(name + ".")]
        lowest = min((x for x in below if x is not None), default=None)
        if package is not None and lowest is not None and package > lowest:
            wrong.append(f"{describe(name)} is above its module at {lowest.name.lower()}")
    assert not wrong, "\n".join(wrong)


def upward_imports() -> list[str]:
    found = []
    for module in MODULES:
        layer = layer_of(module)
        if layer is None:
            continue
        for line, target in imports_of(module):
            to = layer_of(target)
            if to is not None and to > layer:
                found.append(f"{describe(module)} -> {describe(target)}  [line {line}]")
    return sorted(set(found))


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    """The one rule: a module imports only from its own layer or below, so each layer can be
    read, tested and changed knowing only what is under it."""
    upward = upward_imports()
    assert not upward, f"{len(upward)} upward imports:\n" + "\n".join(upward)


def test_only_the_api_and_the_root_import_the_sidecar_itself() -> None:
    """``sidecar.app`` (the whole running sidecar) is reached only by the root layer; everything
    else gets the small views of :mod:`sidecar.api.runtime`."""
    allowed = ("sidecar.api",)
    offenders = [
        f"{describe(module)} [line {line}]"
        for module in MODULES
        if layer_of(module) is not Layer.ROOT
        and not any(module == a or module.startswith(a + ".") for a in allowed)
        for line, target in imports_of(module)
        if target == "sidecar.app"
    ]
    assert not offenders, "imports sidecar.app:\n" + "\n".join(sorted(offenders))


def test_the_most_specific_entry_decides() -> None:
    """``sidecar.grpc.wire`` is kernel though ``sidecar.grpc.adapter`` is an extension, and
    ``sidecar.tls.spiffe`` a primitive though the rest of ``sidecar.tls`` is an extension."""
    assert layer_of("sidecar.grpc.wire") is Layer.KERNEL
    assert layer_of("sidecar.grpc.adapter") is Layer.EXTENSIONS
    assert layer_of("sidecar.tls.spiffe") is Layer.PRIMITIVES
    assert layer_of("sidecar.tls.peer") is Layer.EXTENSIONS
    assert layer_of("sidecar.grpc.h2_new") is None  # a new module is placed by hand
