"""The admin routes of the webhooks plugin: what is queued, what died, and redelivery.

- ``GET /webhooks``: each webhooks upstream's endpoints with their pending and dead counts
- ``GET /webhooks/deliveries?upstream=U&state=pending|dead&limit=N``: deliveries (no bodies),
  oldest first, at most ``limit`` (default 100, at most 1000)
- ``POST /webhooks/deliveries/{upstream}/{key}/redeliver``: a dead delivery is pending again,
  due now, with a fresh attempt count
- ``POST /webhooks/endpoints/{upstream}/{endpoint}/enable``: re-enables an endpoint a 410 disabled

Nothing here shows a secret or a body.
"""

from __future__ import annotations

from aiohttp import web

from sidecar import runtime_of

from .adapter import WebhooksAdapter
from .delivery import Engine

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


async def overview(request: web.Request) -> web.Response:
    adapter = runtime_of(request).adapter("webhooks")
    engines = adapter.engines if isinstance(adapter, WebhooksAdapter) else {}
    return web.json_response({name: e.describe() for name, e in engines.items()})


async def deliveries(request: web.Request) -> web.Response:
    engine = _engine(request, request.query.get("upstream", ""))
    state = request.query.get("state", "pending")
    if state not in ("pending", "dead"):
        return web.json_response({"error": "state is pending or dead"}, status=400)
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), MAX_LIST)
    except ValueError:
        return web.json_response({"error": "limit is a number"}, status=400)
    held = engine.pending if state == "pending" else engine.dead
    listed = sorted(held.values(), key=lambda d: d.created)[:limit]
    return web.json_response(
        {"state": state, "total": len(held), "deliveries": [d.describe() for d in listed]}
    )


async def redeliver(request: web.Request) -> web.Response:
    engine = _engine(request, request.match_info["upstream"])
    delivery = await engine.redeliver(request.match_info["key"])
    if delivery is None:
        return web.json_response({"error": "no dead delivery of that key"}, status=404)
    return web.json_response(delivery.describe())


async def enable(request: web.Request) -> web.Response:
    engine = _engine(request, request.match_info["upstream"])
    if not await engine.enable(request.match_info["endpoint"]):
        return web.json_response({"error": "no endpoint of that name"}, status=404)
    return web.json_response({"enabled": request.match_info["endpoint"]})
