"""The built-in admin routes, registered through ``sidecar_register_admin_routes``.

- ``/healthz``: 200 while the process serves (liveness);
- ``/readyz``: 200 once started, 503 while starting or draining (readiness);
- ``/metrics``: Prometheus text exposition of this sidecar's registry;
- ``/config``: the running config as JSON, secrets shown only as their references;
- ``/upstreams``: each upstream, its adapter, policies and connection-pool state;
- ``/plugins``: the loaded plugins, where they came from and what they registered;
- ``/explain?route=NAME`` or ``?upstream=NAME``: that route's chain, each filter's settings and
  where they came from (:mod:`sidecar.explain`; ``&format=text`` for a table);
- ``/dashboard``, ``/dashboard/data``: the live dashboard and its JSON (:mod:`sidecar.dashboard`).

Handlers read the sidecar through ``runtime_of(request)``. The probes and the exposition are
written over a :class:`~sidecar.api.RuntimeView` (``*_answer``), so the metrics port, a lifespan,
serves the very same answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .api import AdminRouteRegistry, RuntimeView, hookimpl, runtime_of
from .build_kind import build_kind
from .control_answers import Answer, aiohttp_response
from .deferred_import import deferred
from .explain import ExplainError, explain_running, render_text

if TYPE_CHECKING:
    from aiohttp import web

    from .dashboard import endpoints as dashboard
else:
    # the handlers below import aiohttp (and the dashboard) when they first run: the probes
    # and the exposition are answered without it (:mod:`sidecar.control_light`)
    web = deferred("aiohttp.web")
    dashboard = deferred("sidecar.dashboard.endpoints")

#: A probe's (or the exposition's) answer, read from the running sidecar.
ProbeAnswer = Callable[[RuntimeView], Answer]
_JSON = "application/json; charset=utf-8"


def healthz_answer(runtime: RuntimeView) -> Answer:
    return Answer(200, b'{"status": "ok"}', _JSON)


def readyz_answer(runtime: RuntimeView) -> Answer:
    state = runtime.state
    body = json.dumps({"status": state}).encode()  # as aiohttp's json_response writes it
    return Answer(200 if state == "ready" else 503, body, _JSON)


def metrics_answer(runtime: RuntimeView) -> Answer:
    body = runtime.metrics.exposition()
    # the 0.0.4 text format, which every Prometheus version and compatible scraper reads (our
    # names are plain ASCII, so the body is the same as prometheus_client's newer 1.0.0 text)
    return Answer(200, body, CONTENT_TYPE_PLAIN_0_0_4)


async def healthz(request: web.Request) -> web.Response:
    return aiohttp_response(healthz_answer(runtime_of(request)))


async def readyz(request: web.Request) -> web.Response:
    return aiohttp_response(readyz_answer(runtime_of(request)))


async def metrics(request: web.Request) -> web.Response:
    return aiohttp_response(metrics_answer(runtime_of(request)))


#: The admin handlers the control ports answer without aiohttp, and how (:mod:`sidecar.admin`).
PROBES: dict[Callable[..., object], ProbeAnswer] = {
    healthz: healthz_answer,
    readyz: readyz_answer,
    metrics: metrics_answer,
}


async def dashboard_page(request: web.Request) -> web.Response:
    return await dashboard.page(request)


async def dashboard_data(request: web.Request) -> web.Response:
    return await dashboard.data(request)


async def config(request: web.Request) -> web.Response:
    answer = web.json_response(runtime_of(request).redacted_config(), dumps=_dumps)
    # which build runs (``compiled (mypyc)`` or ``pure Python``): a header, since the body is
    # the config itself and must stay one
    answer.headers["x-sidecar-build"] = build_kind()
    return answer


async def upstreams(request: web.Request) -> web.Response:
    return web.json_response(runtime_of(request).describe_upstreams(), dumps=_dumps)


async def plugins(request: web.Request) -> web.Response:
    loaded = runtime_of(request).plugins()
    return web.json_response(
        [{"name": p.name, "source": p.source, "registered": p.registered} for p in loaded],
        dumps=_dumps,
    )


async def explain(request: web.Request) -> web.Response:
    query = request.query
    text = query.get("format", "json")
    if text not in ("json", "text"):
        return web.json_response({"error": "format is json (the default) or text"}, status=400)
    try:
        answer = explain_running(
            runtime_of(request), route=query.get("route"), upstream=query.get("upstream")
        )
    except ExplainError as e:
        if text == "text":
            return web.Response(text=f"{e.message}\n", status=e.status)
        return web.json_response({"error": e.message}, status=e.status)
    if text == "text":
        return web.Response(text=render_text(answer))
    return web.json_response(answer, dumps=_dumps)


def _dumps(obj: object) -> str:
    return json.dumps(obj, indent=2) + "\n"


@hookimpl(trylast=True)
def sidecar_register_admin_routes(registry: AdminRouteRegistry) -> None:
    registry.add("GET", "/healthz", healthz)
    registry.add("GET", "/readyz", readyz)
    registry.add("GET", "/metrics", metrics)
    registry.add("GET", "/config", config)
    registry.add("GET", "/upstreams", upstreams)
    registry.add("GET", "/plugins", plugins)
    registry.add("GET", "/explain", explain)
    registry.add("GET", "/dashboard", dashboard_page)
    registry.add("GET", "/dashboard/data", dashboard_data)
