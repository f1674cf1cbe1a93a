"""``access_log``: one JSON line per call on the ``sidecar.access`` logger (stdout).

Fields: ``method``, ``path`` (as forwarded, route prefix stripped; never the query, which may carry
credentials), ``upstream``, ``route``, ``status``, ``duration_ms`` (to the last body byte written),
``bytes_sent`` (response body bytes written to the app), ``client``, ``attempts`` (upstream
attempts, only on a call that was retried), ``error`` (the
``x-sidecar-error`` reason) when the sidecar decided the answer, and ``aborted`` when the response
was cut short (the app went away, or the drain grace ran out: status 499).

Levels: a call the sidecar decided, a 5xx and an aborted call are WARNING; the rest INFO, sampled
by ``telemetry.access_log.sample_ratio``.

Cost, decided once when the chain is composed: with the access log disabled or its logger above
WARNING the filter is left out of the chain; above INFO (or with ``sample_ratio: 0``) a successful
call costs one ``try`` (free in CPython 3.11), a status comparison and a type
check, and builds nothing unless the body streams (it may yet be cut short).

Where lines go, decided once per composed chain: with the process's access-log writer installed
(``sidecar run``), the filter builds the JSON line itself, byte for byte what
:class:`~sidecar.telemetry.logs.JsonFormatter` would write, and queues it on
:mod:`sidecar.telemetry.access_writer` (a few µs; the stdlib ``logging`` path cost about 45 µs a
line); without one (the sidecar embedded as a library, tests), it logs a record on the
``sidecar.access`` logger. Either way the logger's level decides what is written.

Not here: the sidecar's own log format (:mod:`sidecar.telemetry.logs`), batching and stdout.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _json_str
from time import perf_counter, time
from typing import Any

from ..chain import Filter, Handler
from ..errors import SidecarError
from ..exchange import Exchange, Response
from ..registry import RouteContext
from ..telemetry import access_writer
from ..telemetry.logs import ACCESS_LOGGER, timestamp
from .retry import ATTEMPTS

log = logging.getLogger(ACCESS_LOGGER)

#: Status logged for a call whose app connection went away before the answer (nginx's habit).
CLIENT_CLOSED = 499

Writer = Callable[[Exchange, int, int, "str | None", bool], None]


def _writer(upstream: str, route: str) -> Writer:
    sink = access_writer.current()
    if sink is not None:
        return _line_writer(upstream, route, sink.write)
    return _record_writer(upstream, route)


def _line_writer(upstream: str, route: str, put: Callable[[str], None]) -> Writer:
    """Build the JSON line directly: ``JsonFormatter``'s output for the same record.

    ``json.dumps`` (what the formatter uses, ``ensure_ascii`` on) escapes strings with
    ``encode_basestring_ascii``, writes ints with ``int.__repr__`` and floats with
    ``float.__repr__``, and separates with ``", "`` and ``": "``; so does this.
    """
    enabled = log.isEnabledFor
    info_head = '{"ts": "%s", "level": "info", "logger": "sidecar.access", "msg": "access", '
    warning_head = info_head.replace('"info"', '"warning"')
    where = f', "upstream": {_json_str(upstream)}, "route": {_json_str(route)}, "status": '
    info, warning = logging.INFO, logging.WARNING

    def write(exchange: Exchange, status: int, sent: int, error: str | None, ok: bool) -> None:
        if error or status >= 500 or not ok:
            if not enabled(warning):
                return
            head = warning_head
        else:
            if not enabled(info):
                return
            head = info_head
        duration = round((perf_counter() - exchange.start) * 1000, 3)
        line = (
            f"{head % timestamp(time())}"
            f'"method": {_json_str(exchange.method)}, "path": {_json_str(exchange.path)}'
            f"{where}{int(status)}, "
            f'"duration_ms": {float(duration)!r}, "bytes_sent": {int(sent)}, '
            f'"client": {_json_str(exchange.client)}'
        )
        attempts = exchange.peek(ATTEMPTS)  # set only when the call was retried
        if attempts is not None:
            line += f', "attempts": {int(attempts)}'
        if error:
            line += f', "error": {_json_str(error)}'
        put(line + (', "aborted": true}\n' if not ok else "}\n"))

    return write


def _record_writer(upstream: str, route: str) -> Writer:
    def write(exchange: Exchange, status: int, sent: int, error: str | None, ok: bool) -> None:
        level = logging.WARNING if error or status >= 500 or not ok else logging.INFO
        if not log.isEnabledFor(level):
            return
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
        attempts = exchange.peek(ATTEMPTS)  # set only when the call was retried
        if attempts is not None:
            fields["attempts"] = attempts
        if error:
            fields["error"] = error
        if not ok:
            fields["aborted"] = True
        log.log(level, "access", extra={"fields": fields})

    return write


def _when_sent(resp: Response, write: Writer, exchange: Exchange, failures: bool = False) -> None:
    """Write the line once the listener has sent (or abandoned) the body: bytes and true end.

    With ``failures``, only a body cut short gets its line (a call sampled out, or INFO off).
    """
    status = resp.status

    def done(ok: bool, sent: int) -> None:
        if not (failures and ok):
            write(exchange, status, sent, None, ok)

    if resp.on_complete is None:
        resp.on_complete = [done]
    else:
        resp.on_complete.append(done)


def _make_filter(write: Writer, ratio: float) -> Filter:
    """``ratio`` of successful calls get a line (0: errors only, 1: every call); 5xx, sidecar
    decisions and cut calls always do."""
    rand = random.random
    every = ratio >= 1.0
    sampled = 0.0 < ratio < 1.0

    async def access_log(exchange: Exchange, call_next: Handler) -> Response:
        try:
            resp = await call_next(exchange)
        except SidecarError as e:
            write(exchange, e.status, 0, e.code, True)
            raise
        except asyncio.CancelledError:
            write(exchange, CLIENT_CLOSED, 0, None, False)
            raise
        except Exception:
            write(exchange, 500, 0, "internal", True)  # rescue answers it with 500 internal
            raise
        # sampling drops successful calls only: a 5xx is always worth its line
        if every or resp.status >= 500 or (sampled and rand() < ratio):
            _when_sent(resp, write, exchange)
        elif not isinstance(resp.body, bytes):
            _when_sent(resp, write, exchange, failures=True)  # a stream may still be cut short
        return resp

    return access_log


def unrouted(exchange: Exchange, error: SidecarError) -> None:
    """The line of a call no route took (404 ``no_route``): the listener answered it itself."""
    # an error path: the writer is looked up per call, so it follows configure_logging
    _writer("", "")(exchange, error.status, 0, error.code, True)


def factory(ctx: RouteContext) -> Filter | None:
    cfg = ctx.config.telemetry.access_log
    if not cfg.enabled or not log.isEnabledFor(logging.WARNING):
        return None
    write = _writer(ctx.upstream_name, ctx.route)
    # above INFO only the WARNING lines (errors, decisions, cut calls) are written
    return _make_filter(write, cfg.sample_ratio if log.isEnabledFor(logging.INFO) else 0.0)
