"""``access_log``: one JSON line per call on the ``sidecar.access`` logger (stdout).

Fields, in this order: ``listener`` (``http``, ``grpc``, ``inbound``), ``method``, ``path`` (as
forwarded, route prefix stripped; never the query, which may carry credentials), ``upstream``,
``route``, ``status`` (what the app got; on a front that answers in gRPC terms, as the gRPC
port does, the HTTP status, 200 for every answered call, and ``grpc_status`` the gRPC status
code), ``duration_ms`` (to the last body byte written), ``bytes_received`` (request body bytes
from the app: the body's length when it was in memory, else its ``Content-Length``; absent for a
streamed body of unknown length, as a gRPC stream's is; a unary gRPC call's one message counts),
``bytes_sent`` (response body bytes written to the app), ``client``, then when they apply:
``trace_id`` (the trace the call belongs to: the tracing filter's, else the app's
``traceparent``), ``attempts`` (upstream attempts, only on a call that was retried), ``decision``
(:mod:`sidecar.telemetry.decisions`: a rate-limit wait or shadow, a backend that failed open),
``error`` (the ``x-sidecar-error`` reason) when the sidecar decided the answer, the fields a
plugin added (``sidecar.api.log_field``: bounded, names checked, values JSON strings), and
``aborted`` when the response was cut short (the app went away, or the drain grace ran out:
status 499).

Levels: a call the sidecar decided, a 5xx, a gRPC server-side failure (:data:`GRPC_FAILURES`)
and an aborted call are WARNING; the rest INFO, sampled by ``telemetry.access_log.sample_ratio``.
``telemetry.access_log.level: warning`` keeps the WARNING lines only (a reload may change it).

Cost, decided once when the chain is composed: with the access log disabled or its logger above
WARNING the filter is left out of the chain; at level ``warning`` (or with ``sample_ratio: 0``) a
successful call costs one ``try`` (free in CPython 3.11), a status comparison and a type check,
and builds nothing unless the body streams (it may yet be cut short).

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
from typing import Any, Final

from ..answers import error_body
from ..api import FrontTraits, RouteContext
from ..api.calls import LOG_FIELDS
from ..chain import Filter
from ..errors import SidecarError
from ..exchange import Exchange, Response
from ..grpc.wire import grpc_status
from ..observing import Observer, Observing
from ..telemetry import access_writer
from ..telemetry.decisions import DECISION
from ..telemetry.logs import ACCESS_LOGGER, timestamp
from ..telemetry.trace_ids import TRACE_ID, trace_id_from_traceparent
from .retry import ATTEMPTS

log = logging.getLogger(ACCESS_LOGGER)

#: Status logged for a call whose app connection went away before the answer (nginx's habit).
CLIENT_CLOSED: Final = 499
#: gRPC status codes that are the server side's failure, logged as WARNING like an HTTP 5xx:
#: UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE, DATA_LOSS. The rest (NOT_FOUND,
#: INVALID_ARGUMENT...) are ordinary answers, like a 4xx.
GRPC_FAILURES: Final = frozenset({2, 4, 13, 14, 15})
_GRPC_CANCELLED, _GRPC_INTERNAL = 1, 13
# JSON pieces of the fast line writer
_GRPC_FIELD: Final = ', "grpc_status": '
_RECEIVED_FIELD: Final = ', "bytes_received": '
_END: Final = "}\n"
_END_ABORTED: Final = ', "aborted": true}\n'

#: ``(exchange, status, bytes_sent, error, ok, grpc_status)``
Writer = Callable[[Exchange, int, int, "str | None", bool, "int | None"], None]


def _is_warning(status: int, error: str | None, ok: bool, grpc: int | None) -> bool:
    return bool(error) or status >= 500 or not ok or (grpc is not None and grpc in GRPC_FAILURES)


def _received(exchange: Exchange) -> int | None:
    body = exchange.body
    return len(body) if type(body) is bytes else exchange.body_length


def _trace_id(exchange: Exchange) -> str | None:
    # the tracing filter's id when it runs; else the app's own traceparent (a header scan: a
    # dozen pairs), so lines join up with the app's traces even with tracing off
    trace = exchange.peek(TRACE_ID)
    if trace is None:
        trace = trace_id_from_traceparent(exchange.headers.get("traceparent"))
    return trace


def _writer(listener: str, upstream: str, route: str) -> Writer:
    sink = access_writer.current()
    if sink is not None:
        return _line_writer(listener, upstream, route, sink.write)
    return _record_writer(listener, upstream, route)


def _line_writer(listener: str, upstream: str, route: str, put: Callable[[str], None]) -> Writer:
    """Build the JSON line directly: ``JsonFormatter``'s output for the same record.

    ``json.dumps`` (what the formatter uses, ``ensure_ascii`` on) escapes strings with
    ``encode_basestring_ascii``, writes ints with ``int.__repr__`` and floats with
    ``float.__repr__``, and separates with ``", "`` and ``": "``; so does this.

    Written for the compiler: every piece is a ``str`` local and the line is one f-string of
    them (one ``CPyStr_Build``); a piece of another type, a format spec or ``%`` would each be a
    ``str.format`` call, and such calls were most of this function's cost.
    """
    enabled = log.isEnabledFor
    # what isEnabledFor answers from once the logger is not disabled, read here first: the
    # interpreted call is a frame per line (logging empties this dict whenever a level changes,
    # and isEnabledFor fills it again; without it, every line asks isEnabledFor)
    cache = getattr(log, "_cache", None)
    answered: dict[int, bool] = cache if isinstance(cache, dict) else {}
    level_info = (
        '", "level": "info", "logger": "sidecar.access", "msg": "access", '
        + f'"listener": {_json_str(listener)}, "method": '
    )
    level_warning = level_info.replace('"info"', '"warning"', 1)
    where = f', "upstream": {_json_str(upstream)}, "route": {_json_str(route)}, "status": '
    info, warning = logging.INFO, logging.WARNING
    json_str = _json_str
    clock, wall = perf_counter, time
    failures = GRPC_FAILURES
    end_ok, end_aborted = _END, _END_ABORTED
    stamp = _Timestamps()
    # names from other modules, held here: the compiled closure reads them without a
    # module-dict lookup on every line
    trace_key, attempts_key, decision_key, fields_key = TRACE_ID, ATTEMPTS, DECISION, LOG_FIELDS
    # the method and the app's address repeat line after line: each quoted once
    quoted_methods: dict[str, str] = {}
    last_client = ""
    last_quoted_client: str = json_str("")

    def write(
        exchange: Exchange, status: int, sent: int, error: str | None, ok: bool, grpc: int | None
    ) -> None:
        nonlocal last_client, last_quoted_client
        if log.disabled:
            return  # as isEnabledFor answers, before its cache
        if error or status >= 500 or not ok or (grpc is not None and grpc in failures):
            on = answered.get(warning)
            if not (enabled(warning) if on is None else on):
                return
            level = level_warning
        else:
            on = answered.get(info)
            if not (enabled(info) if on is None else on):
                return
            level = level_info
        duration = _millis(clock() - exchange.start)
        body = exchange.body  # (_received and _trace_id inlined: this runs on every line)
        received = len(body) if type(body) is bytes else exchange.body_length
        # the optional fields: usually none applies, and nothing is built for them
        tail = ""
        trace = exchange.peek(trace_key)
        if trace is None:
            parent = exchange.headers.get("traceparent")
            if parent is not None:
                trace = trace_id_from_traceparent(parent)
        if trace is not None:
            quoted: str = json_str(trace)
            tail = f', "trace_id": {quoted}'
        attempts = exchange.peek(attempts_key)  # set only when the call was retried
        if attempts is not None:
            count: str = str(int(attempts))
            tail = f'{tail}, "attempts": {count}'
        decision = exchange.peek(decision_key)
        if decision is not None:
            quoted = json_str(decision)
            tail = f'{tail}, "decision": {quoted}'
        if error:
            quoted = json_str(error)
            tail = f'{tail}, "error": {quoted}'
        extra = exchange.peek(fields_key)  # a plugin's fields (sidecar.api.log_field)
        if extra is not None:
            for name, value in extra.items():  # names are checked: [a-z0-9_], quoted as is
                quoted = json_str(value)
                tail = f'{tail}, "{name}": {quoted}'
        ts: str = stamp.of(wall())
        verb = exchange.method
        method = quoted_methods.get(verb)
        if method is None:
            method = json_str(verb)
            if len(quoted_methods) < 64:  # llhttp knows a few dozen methods
                quoted_methods[verb] = method
        path: str = json_str(exchange.path)
        app = exchange.client
        if app != last_client:
            last_client = app
            last_quoted_client = json_str(app)
        client = last_quoted_client
        code: str = str(status)
        grpc_part = "" if grpc is None else _GRPC_FIELD + str(grpc)
        received_part = "" if received is None else _RECEIVED_FIELD + str(received)
        sent_part: str = str(sent)
        end = end_ok if ok else end_aborted
        put(
            f'{{"ts": "{ts}{level}{method}, "path": {path}{where}{code}{grpc_part}'
            f', "duration_ms": {duration}{received_part}, "bytes_sent": {sent_part}'
            f', "client": {client}{tail}{end}'
        )

    return write


#: a duration's microseconds past the millisecond, as ``float.__repr__`` ends a number of
#: milliseconds: ``.0``, ``.001`` ... ``.5`` ... ``.999`` (a table: no str work per line)
_FRACTIONS: Final = (".0",) + tuple("." + str(n + 1000)[1:].rstrip("0") for n in range(1, 1000))
#: a timestamp's milliseconds and its zone: ``.000Z`` ... ``.999Z``
_MILLIS_Z: Final = tuple(f".{str(n + 1000)[1:]}Z" for n in range(1000))


def _millis(seconds: float) -> str:
    """``seconds`` as milliseconds to the microsecond, as JSON: ``repr(round(seconds * 1000, 3))``
    (``12.5``, ``0.034``, ``3.0``) from integer arithmetic, a tenth of what ``round`` and a float
    ``repr`` cost (a halfway microsecond may round the other way)."""
    micros = int(seconds * 1_000_000 + 0.5)
    whole: str = str(micros // 1000)
    return whole + _FRACTIONS[micros % 1000]


class _Timestamps:
    """``time()`` as ``2026-11-26T10:14:38.663Z`` (what :func:`~sidecar.telemetry.logs.timestamp`
    writes), with one ``strftime`` per second and no format spec per line."""

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def of(self, created: float) -> str:
        sec = int(created)
        if sec != self.second:
            self.prefix = timestamp(float(sec))[:-5]  # the shared format, without ".000Z"
            self.second = sec
        # the milliseconds as logging computes LogRecord.msecs (below 1000: created - sec < 1)
        return self.prefix + _MILLIS_Z[int((created - sec) * 1000)]


def _record_writer(listener: str, upstream: str, route: str) -> Writer:
    def write(
        exchange: Exchange, status: int, sent: int, error: str | None, ok: bool, grpc: int | None
    ) -> None:
        level = logging.WARNING if _is_warning(status, error, ok, grpc) else logging.INFO
        if not log.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "listener": listener,
            "method": exchange.method,
            "path": exchange.path,
            "upstream": upstream,
            "route": route,
            "status": status,
        }
        if grpc is not None:
            fields["grpc_status"] = grpc
        fields["duration_ms"] = round((perf_counter() - exchange.start) * 1000, 3)
        received = _received(exchange)
        if received is not None:
            fields["bytes_received"] = received
        fields["bytes_sent"] = sent
        fields["client"] = exchange.client
        trace = _trace_id(exchange)
        if trace is not None:
            fields["trace_id"] = trace
        attempts = exchange.peek(ATTEMPTS)  # set only when the call was retried
        if attempts is not None:
            fields["attempts"] = attempts
        decision = exchange.peek(DECISION)
        if decision is not None:
            fields["decision"] = decision
        if error:
            fields["error"] = error
        extra = exchange.peek(LOG_FIELDS)
        if extra is not None:
            fields.update(extra)  # names never one of the above (sidecar.api.calls)
        if not ok:
            fields["aborted"] = True
        log.log(level, "access", extra={"fields": fields})

    return write


def _when_sent(resp: Response, write: Writer, exchange: Exchange, failures: bool = False) -> None:
    """Write the line once the front has sent (or abandoned) the body: bytes and true end.

    With ``failures``, only a body cut short gets its line (a call sampled out, or INFO off).
    """
    _on_complete(resp, _Sent(write, exchange, resp.status, failures))


class _Sent:
    """The ``on_complete`` callback of :func:`_when_sent`: one object per call, where a closure
    is two (compiled, its variables live in an object of their own)."""

    __slots__ = ("exchange", "failures", "status", "write")

    def __init__(self, write: Writer, exchange: Exchange, status: int, failures: bool) -> None:
        self.write = write
        self.exchange = exchange
        self.status = status
        self.failures = failures

    def __call__(self, ok: bool, sent: int) -> None:
        if not (self.failures and ok):
            self.write(self.exchange, self.status, sent, None, ok, None)


def _when_grpc_sent(resp: Response, write: Writer, exchange: Exchange, failures: bool) -> None:
    """A gRPC front's line, once the trailers are out: the status is only known then.

    With ``failures``, only a call cut short or ending in one of :data:`GRPC_FAILURES` gets it.
    """

    def done(ok: bool, sent: int) -> None:
        code = grpc_status(resp)  # None: the call was cut before its trailers
        if failures and ok and code not in GRPC_FAILURES:
            return
        write(exchange, resp.status, sent, None, ok, code)

    _on_complete(resp, done)


def _on_complete(resp: Response, done: Callable[[bool, int], None]) -> None:
    if resp.on_complete is None:
        resp.on_complete = [done]
    else:
        resp.on_complete.append(done)


def _error_bytes(exchange: Exchange, error: SidecarError) -> int:
    """The body bytes rescue's answer to ``error`` carries (none for HEAD)."""
    return 0 if exchange.method == "HEAD" else len(error_body(error))


def _make_filter(write: Writer, ratio: float) -> Filter:
    """``ratio`` of successful calls get a line (0: errors only, 1: every call); 5xx, sidecar
    decisions and cut calls always do. An observer (:mod:`sidecar.observing`): fused with
    metrics and rescue into one coroutine frame."""
    return Observing((_CallLog(write, ratio),))


def _make_grpc_filter(write: Writer, ratio: float) -> Filter:
    """A gRPC front's: the line comes once the trailers are out (``grpc_status``); a
    sidecar decision says its gRPC code (``status`` 200: rescue answers it in gRPC terms)."""
    return Observing((_GrpcCallLog(write, ratio),))


class _CallLog(Observer):
    """An HTTP front's line for each call."""

    def __init__(self, write: Writer, ratio: float) -> None:
        self.write = write
        self.ratio = ratio
        self.rand = random.random
        self.every = ratio >= 1.0
        self.sampled = 0.0 < ratio < 1.0

    def ok(self, exchange: Exchange, resp: Response) -> None:
        # sampling drops successful calls only: a 5xx is always worth its line
        if self.every or resp.status >= 500 or (self.sampled and self.rand() < self.ratio):
            _when_sent(resp, self.write, exchange)
        elif not isinstance(resp.body, bytes):
            _when_sent(resp, self.write, exchange, failures=True)  # a stream may yet be cut

    def error(self, exchange: Exchange, e: BaseException) -> None:
        if isinstance(e, SidecarError):
            # rescue (outside this filter) answers with the error's one-line body
            self.write(exchange, e.status, _error_bytes(exchange, e), e.code, True, None)
        elif isinstance(e, asyncio.CancelledError):
            self.write(exchange, CLIENT_CLOSED, 0, None, False, None)
        elif isinstance(e, Exception):
            # rescue answers it with 500 internal
            sent = _error_bytes(exchange, SidecarError("unexpected error in the sidecar"))
            self.write(exchange, 500, sent, "internal", True, None)


class _GrpcCallLog(_CallLog):
    """A gRPC front's line for each call."""

    def ok(self, exchange: Exchange, resp: Response) -> None:
        # sampling drops successful calls only; whether it succeeded is known at the end
        keep = self.every or (self.sampled and self.rand() < self.ratio)
        _when_grpc_sent(resp, self.write, exchange, not keep)

    def error(self, exchange: Exchange, e: BaseException) -> None:
        if isinstance(e, SidecarError):
            self.write(exchange, 200, 0, e.code, True, e.grpc_code)
        elif isinstance(e, asyncio.CancelledError):
            self.write(exchange, CLIENT_CLOSED, 0, None, False, _GRPC_CANCELLED)
        elif isinstance(e, Exception):
            self.write(exchange, 200, 0, "internal", True, _GRPC_INTERNAL)


def unrouted(front: FrontTraits, exchange: Exchange, error: SidecarError, sent: int = 0) -> None:
    """The line of a call no route of ``front`` took (``no_route``): the front answered it.

    ``sent``: the body bytes written (the HTTP front's error text; gRPC answers carry none).
    """
    # an error path: the writer is looked up per call, so it follows configure_logging
    write = _writer(front.name, "", "")
    if front.grpc:  # answered in gRPC terms: HTTP 200, the code trails
        write(exchange, 200, 0, error.code, True, error.grpc_code)
    else:
        write(exchange, error.status, sent, error.code, True, None)


def factory(ctx: RouteContext) -> Filter | None:
    cfg = ctx.config.telemetry.access_log
    if not cfg.enabled or not log.isEnabledFor(logging.WARNING):
        return None
    write = _writer(ctx.listener, ctx.upstream_name, ctx.route)
    # at level warning (the config's, or the logger's) only the WARNING lines are written:
    # errors, decisions, failures and cut calls
    info = cfg.level == "info" and log.isEnabledFor(logging.INFO)
    ratio = cfg.sample_ratio if info else 0.0
    if ctx.front.grpc:
        return _make_grpc_filter(write, ratio)
    return _make_filter(write, ratio)
