"""The ``access_log`` filter: one JSON line per call, cheap when only failures are wanted."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sidecar.api import GRPC_STATUSES, FrontTraits
from sidecar.chain import Filter
from sidecar.errors import NoRoute, RateLimited, UpstreamConnectError, UpstreamTimeout
from sidecar.exchange import Exchange, Headers, Response
from sidecar.filters import access_log
from sidecar.filters.retry import ATTEMPTS
from sidecar.telemetry import access_writer, decisions
from sidecar.telemetry.logs import ACCESS_LOGGER, JsonFormatter, timestamp
from sidecar.telemetry.trace_ids import TRACE_ID
from sidecar.testing import make_exchange, make_route_context, on_front, responder

FIELDS = {
    "listener",
    "method",
    "path",
    "upstream",
    "route",
    "status",
    "duration_ms",
    "bytes_received",
    "bytes_sent",
    "client",
}


class JsonLines(logging.Handler):
    """Collects what the access logger writes, formatted exactly as on stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(json.loads(self.format(record)))

    @property
    def lines(self) -> list[dict[str, Any]]:
        return self.records


class WrittenLines:
    """Collects what the process's access-log writer (``sidecar run``) puts on stdout."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.writer = access_writer.AccessLogWriter(self._write)

    def _write(self, data: bytes) -> int:
        self.out += data
        return len(data)

    @property
    def lines(self) -> list[dict[str, Any]]:
        self.writer.flush()
        return [json.loads(x) for x in self.out.decode().splitlines()]


@pytest.fixture(params=["logging", "writer"])
def lines(request: pytest.FixtureRequest) -> Iterator[JsonLines | WrittenLines]:
    """Both ways a line is written: the ``sidecar.access`` logger, and the batched writer."""
    logger = logging.getLogger(ACCESS_LOGGER)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    if request.param == "logging":
        handler = JsonLines()
        logger.addHandler(handler)
        try:
            yield handler
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
        return
    written = WrittenLines()
    access_writer.install(written.writer)
    try:
        yield written
    finally:
        access_writer.install(None)
        logger.setLevel(old_level)


def make(listener: str = "http", **access: Any) -> Filter:
    ctx = make_route_context(
        name="pay", route="pay-route", config={"telemetry": {"access_log": access}}
    )
    f = access_log.factory(on_front(ctx, listener))
    assert f is not None
    return f


def sent(resp: Response, ok: bool = True) -> None:
    """What the listener does once the body is written (or abandoned)."""
    n = len(resp.body) if isinstance(resp.body, bytes) else 0
    for cb in resp.on_complete or ():
        cb(ok, n)


def raising(error: BaseException):  # type: ignore[no-untyped-def]
    async def call_next(exchange: Exchange) -> Response:
        raise error

    return call_next


async def test_one_json_line_per_call_with_the_documented_fields(
    lines: JsonLines | WrittenLines,
) -> None:
    """An operator gets method, path, upstream, route, status, duration, bytes and client."""
    f = make()
    ex = make_exchange("POST", "/charges/7", client="127.0.0.1:5555")
    resp = await f(ex, responder(201, b"created!"))
    assert lines.lines == []  # written when the body has been sent, not before
    sent(resp)
    (line,) = lines.lines
    assert FIELDS <= set(line)
    assert line["level"] == "info" and line["logger"] == "sidecar.access"
    assert line["method"] == "POST" and line["path"] == "/charges/7"
    assert (line["upstream"], line["route"]) == ("pay", "pay-route")
    assert (line["status"], line["bytes_sent"], line["client"]) == (201, 8, "127.0.0.1:5555")
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert "error" not in line and "aborted" not in line


async def test_never_logs_the_query_string(lines: JsonLines | WrittenLines) -> None:
    """Query strings carry API keys and tokens; the access log must not keep them."""
    f = make()
    resp = await f(make_exchange(path="/v1/x", query="api_key=hunter2&x=1"), responder())
    sent(resp)
    raw = json.dumps(lines.lines)
    assert "hunter2" not in raw and "api_key" not in raw
    assert lines.lines[0]["path"] == "/v1/x"


async def test_sidecar_decisions_and_failures_are_warnings_with_the_reason(
    lines: JsonLines | WrittenLines,
) -> None:
    """A sidecar decision says its reason; 5xx, bugs and cut-short bodies stand out as warnings."""
    f = make()
    with pytest.raises(UpstreamTimeout):
        await f(make_exchange(), raising(UpstreamTimeout("slow")))
    with pytest.raises(KeyError):
        await f(make_exchange(), raising(KeyError("bug")))
    sent(await f(make_exchange(), responder(503)))
    sent(await f(make_exchange(), responder(200, b"part")), ok=False)
    sent(await f(make_exchange(), responder(404)))
    got = [(x["level"], x["status"], x.get("error"), x.get("aborted")) for x in lines.lines]
    assert got == [
        ("warning", 504, "upstream_timeout", None),
        ("warning", 500, "internal", None),
        ("warning", 503, None, None),
        ("warning", 200, None, True),
        ("info", 404, None, None),  # the upstream's own 4xx is an ordinary answer
    ]


async def test_a_call_whose_app_went_away_is_logged_as_499_aborted(
    lines: JsonLines | WrittenLines,
) -> None:
    """Cancelled calls (app disconnected, drain grace over) still leave their line."""
    f = make()
    with pytest.raises(asyncio.CancelledError):
        await f(make_exchange(), raising(asyncio.CancelledError()))
    (line,) = lines.lines
    assert (line["level"], line["status"], line["aborted"]) == ("warning", 499, True)


async def test_sampling_drops_successes_only(
    lines: JsonLines | WrittenLines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sample_ratio` thins out successful calls; errors are always logged."""
    draws = iter([0.1, 0.9, 0.2, 0.8] * 10)
    monkeypatch.setattr(access_log.random, "random", lambda: next(draws))
    f = make(sample_ratio=0.5)
    for _ in range(4):
        sent(await f(make_exchange(), responder(200)))
    assert len(lines.lines) == 2
    with pytest.raises(UpstreamConnectError):
        await f(make_exchange(), raising(UpstreamConnectError("down")))
    sent(await f(make_exchange(), responder(502)))
    assert [x["status"] for x in lines.lines[2:]] == [502, 502]
    none = make(sample_ratio=0.0)
    sent(await none(make_exchange(), responder(200)))
    assert len(lines.lines) == 4


async def test_above_info_a_success_builds_nothing_but_errors_still_log(
    lines: JsonLines | WrittenLines,
) -> None:
    """With the log level at warning, a successful call pays no callback and writes no line."""
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)
    f = make()
    resp = await f(make_exchange(), responder(200, b"ok"))
    assert resp.on_complete is None
    sent(resp)
    with pytest.raises(UpstreamTimeout):
        await f(make_exchange(), raising(UpstreamTimeout("slow")))
    sent(await f(make_exchange(), responder(502)))

    async def stream() -> AsyncIterator[bytes]:
        yield b"chunk"

    async def streaming(exchange: Exchange) -> Response:
        return Response(200, body=stream(), length=None)

    sent(await f(make_exchange(), streaming))  # a stream sent in full: nothing
    sent(await f(make_exchange(), streaming), ok=False)  # a stream cut short: a warning
    assert [(x["level"], x["status"], x.get("aborted")) for x in lines.lines] == [
        ("warning", 504, None),
        ("warning", 502, None),
        ("warning", 200, True),
    ]


async def test_a_level_changed_while_calls_run_applies_from_the_next_line(
    lines: JsonLines | WrittenLines,
) -> None:
    """The access logger's level (or its being disabled) changed at run time decides the very
    next line of a chain built before the change."""
    logger = logging.getLogger(ACCESS_LOGGER)
    f = make()

    async def call(status: int) -> None:
        sent(await f(make_exchange(), responder(status)))

    await call(200)
    logger.setLevel(logging.WARNING)
    await call(201)  # a success above the level: no line
    await call(502)
    logger.setLevel(logging.INFO)
    await call(202)
    await call(504)
    logger.disabled = True
    try:
        await call(204)  # a disabled logger writes nothing, success or failure
        await call(503)
    finally:
        logger.disabled = False
    await call(203)
    assert [x["status"] for x in lines.lines] == [200, 502, 202, 504, 203]


async def test_left_out_of_the_chain_when_disabled_or_above_warning() -> None:
    """Access logging off costs nothing at all: the filter is not composed in."""
    logger = logging.getLogger(ACCESS_LOGGER)
    old = logger.level
    try:
        logger.setLevel(logging.INFO)
        ctx = make_route_context(config={"telemetry": {"access_log": {"enabled": False}}})
        assert access_log.factory(ctx) is None
        logger.setLevel(logging.ERROR)
        assert access_log.factory(make_route_context()) is None
    finally:
        logger.setLevel(old)


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_the_trace_id_comes_from_tracing_else_from_the_apps_traceparent(
    lines: JsonLines | WrittenLines,
) -> None:
    """A line joins up with the call's trace: tracing's id, else the app's own traceparent."""
    f = make()
    traced = make_exchange(headers={"traceparent": TRACEPARENT})
    traced.stash[TRACE_ID] = "4bf92f3577b34da6a3ce929d0e0e4736"  # tracing continued or began it
    sent(await f(traced, responder()))
    sent(await f(make_exchange(headers={"traceparent": TRACEPARENT}), responder()))
    sent(await f(make_exchange(headers={"traceparent": "00-garbage"}), responder()))
    sent(await f(make_exchange(), responder()))
    assert [x.get("trace_id") for x in lines.lines] == [
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "0af7651916cd43dd8448eb211c80319c",
        None,
        None,
    ]


async def test_bytes_received_and_sent_the_listener_attempts_and_decisions(
    lines: JsonLines | WrittenLines,
) -> None:
    """An operator sees request and response sizes, where the call came in, retries and waits."""
    f = make(listener="inbound")
    retried = make_exchange("POST", "/up", body=b"0123456789")
    retried.stash[ATTEMPTS] = 2
    decisions.note(retried, decisions.RATE_LIMIT_WAIT)
    sent(await f(retried, responder(200, b"ok")))

    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"

    declared = make_exchange("PUT", "/declared")
    declared.body, declared.body_length = chunks(), 4096  # streamed with a Content-Length
    sent(await f(declared, responder(200)))
    chunked = make_exchange("PUT", "/chunked")
    chunked.body, chunked.body_length = chunks(), None
    sent(await f(chunked, responder(200)))
    first, second, third = lines.lines
    assert first["listener"] == "inbound"
    assert (first["bytes_received"], first["bytes_sent"]) == (10, 2)
    assert (first["attempts"], first["decision"]) == (2, "rate_limit:wait")
    assert second["bytes_received"] == 4096 and "attempts" not in second
    assert "bytes_received" not in third and "decision" not in third


async def test_level_warning_in_the_config_keeps_only_the_failures(
    lines: JsonLines | WrittenLines,
) -> None:
    """`telemetry.access_log.level: warning` drops successful calls, whatever the sampling."""
    f = make(level="warning")
    resp = await f(make_exchange(), responder(200, b"ok"))
    assert resp.on_complete is None  # nothing built for a success
    with pytest.raises(RateLimited):
        await f(make_exchange(), raising(RateLimited("slow down")))
    sent(await f(make_exchange(), responder(503)))
    assert [(x["level"], x["status"], x.get("error")) for x in lines.lines] == [
        ("warning", 429, "rate_limited"),
        ("warning", 503, None),
    ]


def grpc_answer(code: int, body: bytes = b"") -> Response:
    resp = Response(200, body=body)
    resp.trailers = Headers([("grpc-status", str(code)), ("grpc-message", "")])
    return resp


async def test_grpc_calls_log_their_grpc_status_once_the_trailers_are_out(
    lines: JsonLines | WrittenLines,
) -> None:
    """On the gRPC listener `status` is 200 and `grpc_status` says how the call ended."""
    f = make(listener="grpc")

    async def later(exchange: Exchange) -> Response:
        return Response(200, body=b"msg")  # its trailers come with the end of the body

    resp = await f(make_exchange("POST", "/pkg.Svc/Get"), later)
    assert lines.lines == []
    resp.trailers = Headers([("grpc-status", "5")])  # NOT_FOUND: an ordinary answer
    sent(resp)
    sent(await f(make_exchange("POST", "/pkg.Svc/Get"), lambda ex: _ready(grpc_answer(14))))
    with pytest.raises(RateLimited):
        await f(make_exchange("POST", "/pkg.Svc/Get"), raising(RateLimited("slow down")))
    sent(await f(make_exchange("POST", "/pkg.Svc/Get"), lambda ex: _ready(grpc_answer(0))), False)
    got = [
        (x["listener"], x["level"], x["status"], x.get("grpc_status"), x.get("error"))
        for x in lines.lines
    ]
    assert got == [
        ("grpc", "info", 200, 5, None),
        ("grpc", "warning", 200, 14, None),  # UNAVAILABLE: the server side failed
        ("grpc", "warning", 200, 8, "rate_limited"),  # RESOURCE_EXHAUSTED, decided here
        ("grpc", "warning", 200, 0, None),  # cut short
    ]
    assert lines.lines[-1]["aborted"] is True


async def test_grpc_sampling_still_logs_every_failed_call(
    lines: JsonLines | WrittenLines,
) -> None:
    """Sampled out or at level warning, a gRPC call that failed upstream still gets its line."""
    for f in (make(listener="grpc", sample_ratio=0.0), make(listener="grpc", level="warning")):
        for code in (0, 5, 13):
            sent(
                await f(
                    make_exchange("POST", "/pkg.Svc/Get"), lambda ex, c=code: _ready(grpc_answer(c))
                )
            )
    assert [x["grpc_status"] for x in lines.lines] == [13, 13]


async def _ready(resp: Response) -> Response:
    return resp


def test_an_unrouted_call_is_logged_in_its_fronts_terms(
    lines: JsonLines | WrittenLines,
) -> None:
    """An unrouted call's line names its front and says what the app got: an HTTP 404, or (a
    front answering in gRPC terms, whatever its name) HTTP 200 with UNIMPLEMENTED."""
    error = NoRoute("no route for this path")
    access_log.unrouted(FrontTraits("http"), make_exchange("GET", "/nowhere"), error, 27)
    events = FrontTraits("events", statuses=GRPC_STATUSES)
    access_log.unrouted(events, make_exchange("POST", "/nowhere.v1.Nope/Call"), error)
    got = [
        (x["listener"], x["level"], x["status"], x.get("grpc_status"), x["bytes_sent"], x["error"])
        for x in lines.lines
    ]
    assert got == [
        ("http", "warning", 404, None, 27, "no_route"),
        ("events", "warning", 200, 12, 0, "no_route"),
    ]


async def test_the_fast_writer_writes_what_the_log_formatter_would() -> None:
    """A log shipper sees one line format whichever way it was written: same keys, same order,
    same text for every value but the time taken, the timestamp in the formatter's format."""
    logger = logging.getLogger(ACCESS_LOGGER)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    via_logging, via_writer = JsonLines(), WrittenLines()
    raw: list[str] = []
    via_logging.emit = lambda record: raw.append(via_logging.format(record))  # type: ignore[method-assign]
    try:
        logger.addHandler(via_logging)
        ex = make_exchange("GET", '/a"b/\u00e9', client="10.0.0.1:9", headers={"x": "y"})
        sent(await make()(ex, responder(502, b"bad")))
        logger.removeHandler(via_logging)
        access_writer.install(via_writer.writer)
        ex = make_exchange("GET", '/a"b/\u00e9', client="10.0.0.1:9", headers={"x": "y"})
        sent(await make()(ex, responder(502, b"bad")))
        via_writer.writer.flush()
    finally:
        logger.removeHandler(via_logging)
        access_writer.install(None)
        logger.setLevel(old_level)
    (expected,) = raw
    (written,) = via_writer.out.decode().splitlines()

    def comparable(line: str) -> str:  # the two calls took their own time, at their own time
        line = re.sub(r'"duration_ms": [0-9.e-]+', '"duration_ms": D', line)
        return re.sub(r'"ts": "[^"]+"', '"ts": T', line)

    assert comparable(written) == comparable(expected)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", json.loads(written)["ts"])


@pytest.mark.parametrize(
    "created", [1_700_000_000.0, 1_700_000_000.0005, 1_700_000_000.5, 1_700_000_059.999]
)
def test_the_fast_writers_timestamps_match_the_log_formatters(created: float) -> None:
    """Access lines and the sidecar's own log lines carry timestamps that sort together."""
    stamps = access_log._Timestamps()
    assert stamps.of(created) == timestamp(created)
    assert stamps.of(created + 1.25) == timestamp(created + 1.25)  # the next second's prefix


@pytest.mark.parametrize(
    "seconds", [0.0, 0.000034, 0.0125, 0.003, 1.0, 12.3456789, 0.0009999, 61.2]
)
def test_durations_are_milliseconds_to_the_microsecond(seconds: float) -> None:
    """``duration_ms`` reads as the formatter's would: milliseconds rounded to the microsecond."""
    assert access_log._millis(seconds) == repr(round(seconds * 1000, 3))
