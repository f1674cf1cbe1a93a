"""``access_log``: one JSON line per call on the ``sidecar.access`` logger (stdout).

Fields: method, path (never the query, which may carry credentials), upstream, route, status,
duration to the last body byte, bytes sent, client, and the sidecar's decision (``error``: the
``x-sidecar-error`` reason) when it made one. Successful calls are sampled by
``telemetry.access_log.sample_ratio``; errors and sidecar decisions are always logged.

When the access logger is not enabled for INFO at compose time the filter is left out of the chain
entirely, except that sidecar decisions still get a WARNING line.
"""

from __future__ import annotations

import logging
import random
from time import perf_counter
from typing import Any

from ..chain import Filter, Handler
from ..errors import SidecarError
from ..exchange import Exchange, Response
from ..registry import RouteContext
from ..telemetry.logs import ACCESS_LOGGER

log = logging.getLogger(ACCESS_LOGGER)


def factory(ctx: RouteContext) -> Filter | None:
    cfg = ctx.config.telemetry.access_log
    if not cfg.enabled:
        return None
    info = log.isEnabledFor(logging.INFO)
    warn = log.isEnabledFor(logging.WARNING)
    if not warn:
        return None
    ratio = cfg.sample_ratio
    upstream, route = ctx.upstream_name, ctx.route
    rand = random.random

    def line(exchange: Exchange, status: int, sent: int, error: str | None, ok: bool) -> None:
        fields: dict[str, Any] = {
            "method": exchange.method,
            "path": exchange.path,
            "upstream": upstream,
            "route": route,
            "status": status,
            "duration_ms": round((perf_counter() - exchange.start) * 1000, 3),
            "bytes_sent": sent,
            "client": exchange.client,
        }
        if error:
            fields["error"] = error
        if not ok:
            fields["aborted"] = True
        level = logging.WARNING if error or status >= 500 or not ok else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, "access", extra={"fields": fields})

    async def access_log(exchange: Exchange, call_next: Handler) -> Response:
        try:
            resp = await call_next(exchange)
        except SidecarError as e:
            line(exchange, e.status, 0, e.code, True)
            raise
        except Exception:
            line(exchange, 500, 0, "internal", True)
            raise
        if not info or (ratio < 1.0 and resp.status < 500 and rand() >= ratio):
            return resp

        def done(ok: bool, sent: int) -> None:
            line(exchange, resp.status, sent, None, ok)

        if resp.on_complete is None:
            resp.on_complete = [done]
        else:
            resp.on_complete.append(done)
        return resp

    return access_log
