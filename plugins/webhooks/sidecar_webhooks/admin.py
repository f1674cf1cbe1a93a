"""The admin routes of the webhooks plugin: what is queued, what died, and redelivery.

- ``GET /webhooks``: each webhooks upstream's endpoints with their pending and dead counts
- ``GET /webhooks/deliveries?upstream=U&state=pending|dead&limit=N``: deliveries (no bodies),
  oldest first, at most ``limit`` (default 100, at most 1000)
- ``POST /webhooks/deliveries/{upstream}/{key}/redeliver``: a dead delivery is pending again,
  due now, with a fresh attempt count
- ``POST /webhooks/endpoints/{upstream}/{endpoint}/enable``: re-enables an endpoint a 410 disabled

They read the queue through its interface, so they work alike on the file and the Redis queue;
when the queue cannot be reached they answer 503. Nothing here shows a secret or a body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sidecar import deferred, runtime_of

from .adapter import WebhooksAdapter
from .delivery import Engine
from .queue import QueueDown
from .store import State

if TYPE_CHECKING:
    from aiohttp import web
else:  # imported by the first admin call: not by a sidecar that serves none
    web = deferred("aiohttp.web")

MAX_LIST = 1000


def _engine(request: web.Request, upstream: str) -> Engine:
    adapter = runtime_of(request).adapter("webhooks")
    engine = adapter.engines.get(upstream) if isinstance(adapter, WebhooksAdapter) else None
    if engine is None:
        raise web.HTTPNotFound(
            text='{"error": "no running webhooks upstream of that name"}',
            content_type="application/json",
        )
    return engine


def _unavailable() -> web.Response:
    return web.json_response({"error": "the webhooks queue is unavailable"}, status=503)


async def overview(request: web.Request) -> web.Response:
    adapter = runtime_of(request).adapter("webhooks")
    engines = adapter.engines if isinstance(adapter, WebhooksAdapter) else {}
    return web.json_response({name: await e.describe() for name, e in engines.items()})


async def deliveries(request: web.Request) -> web.Response:
    engine = _engine(request, request.query.get("upstream", ""))
    state: State
    match request.query.get("state", "pending"):
        case "pending":
            state = "pending"
        case "dead":
            state = "dead"
        case _:
            return web.json_response({"error": "state is pending or dead"}, status=400)
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), MAX_LIST)
    except ValueError:
        return web.json_response({"error": "limit is a number"}, status=400)
    try:
        total, listed = await engine.queue.listing(state, limit)
    except QueueDown:
        return _unavailable()
    return web.json_response(
        {"state": state, "total": total, "deliveries": [d.describe() for d in listed]}
    )


async def redeliver(request: web.Request) -> web.Response:
    engine = _engine(request, request.match_info["upstream"])
    try:
        delivery = await engine.redeliver(request.match_info["key"])
    except QueueDown:
        return _unavailable()
    if delivery is None:
        return web.json_response({"error": "no dead delivery of that key"}, status=404)
    return web.json_response(delivery.describe())


async def enable(request: web.Request) -> web.Response:
    engine = _engine(request, request.match_info["upstream"])
    try:
        enabled = await engine.enable(request.match_info["endpoint"])
    except QueueDown:
        return _unavailable()
    if not enabled:
        return web.json_response({"error": "no endpoint of that name"}, status=404)
    return web.json_response({"enabled": request.match_info["endpoint"]})
