"""What a plugin tells the core about one call (``sidecar.api.calls``): extra access-log
fields, the SERVER span's name, a retry permit or veto; each bounded, each read by the core."""

from __future__ import annotations

import json
import logging
import re

import pytest
from opentelemetry.trace import SpanKind

import sidecar
from sidecar.api import (
    LOG_FIELDS,
    MAX_LOG_FIELDS,
    MAX_LOG_VALUE,
    MAX_SPAN_NAME,
    Exchange,
    Handler,
    Response,
    allow_retry,
    log_field,
    name_span,
)
from sidecar.errors import UpstreamTimeout
from sidecar.telemetry import access_writer
from sidecar.telemetry.logs import ACCESS_LOGGER
from sidecar.telemetry.tracing import Tracing
from sidecar.testing import make_exchange, responder

from .test_filters_access_log import JsonLines, WrittenLines, make, sent
from .test_retry_filter import Script, build, sample, status
from .test_tracing_filters import Upstream, chain, complete, context, live, of_kind

__all__ = ["live"]  # the tracing fixture, used by name below


def fielded(*fields: tuple[str, str]) -> Handler:
    """An upstream whose handler (a plugin's adapter, say) adds access-log fields."""

    async def adapter(exchange: Exchange) -> Response:
        for name, value in fields:
            log_field(exchange, name, value)
        return Response(200, body=b"ok")

    return adapter


def test_the_per_call_signals_are_public() -> None:
    """A plugin imports the three signals from ``sidecar`` itself."""
    for name in ("log_field", "name_span", "allow_retry", "LOG_FIELDS", "SPAN_NAME"):
        assert name in sidecar.__all__ and hasattr(sidecar, name)


async def test_a_plugins_fields_are_on_the_line_written_either_way_with_the_same_text() -> None:
    """A log shipper sees a plugin's fields after the sidecar's, JSON-escaped, and the same
    line whether the process's writer or the logging path wrote it."""
    logger = logging.getLogger(ACCESS_LOGGER)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    via_logging, via_writer = JsonLines(), WrittenLines()
    raw: list[str] = []
    via_logging.emit = lambda record: raw.append(via_logging.format(record))  # type: ignore[method-assign]
    fields = (("graphql_operation", 'Get"User\u00e9\n'), ("graphql_type", "query"))
    try:
        logger.addHandler(via_logging)
        sent(await make()(make_exchange("POST", "/graphql"), fielded(*fields)))
        logger.removeHandler(via_logging)
        access_writer.install(via_writer.writer)
        sent(await make()(make_exchange("POST", "/graphql"), fielded(*fields)))
        via_writer.writer.flush()
    finally:
        logger.removeHandler(via_logging)
        access_writer.install(None)
        logger.setLevel(old_level)
    (expected,) = raw
    (written,) = via_writer.out.decode().splitlines()

    def comparable(line: str) -> str:
        line = re.sub(r'"duration_ms": [0-9.e-]+', '"duration_ms": D', line)
        return re.sub(r'"ts": "[^"]+"', '"ts": T', line)

    assert comparable(written) == comparable(expected)
    line = json.loads(written)
    assert list(line)[-2:] == ["graphql_operation", "graphql_type"]
    assert line["graphql_operation"] == 'Get"User\u00e9\n' and line["graphql_type"] == "query"
    assert written.isascii()  # escaped as the sidecar's own strings are


async def test_a_call_without_fields_gets_no_stash_and_no_extra_field() -> None:
    """Lines of calls that add nothing are the sidecar's own, and reading costs no stash."""
    written = WrittenLines()
    logger = logging.getLogger(ACCESS_LOGGER)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    access_writer.install(written.writer)
    try:
        ex = make_exchange()
        sent(await make()(ex, responder(200, b"ok")))
    finally:
        access_writer.install(None)
        logger.setLevel(old_level)
    (line,) = written.lines
    assert list(line)[-1] == "client"
    assert ex._stash is None  # the access log peeked, created nothing


def test_log_fields_are_bounded_and_their_names_checked() -> None:
    """At most MAX_LOG_FIELDS names, values cut at MAX_LOG_VALUE, a name set again replaced;
    bad, reserved or non-str input is refused at once (the plugin's first test finds it)."""
    ex = make_exchange()
    for i in range(MAX_LOG_FIELDS + 3):
        log_field(ex, f"f{i}", "v")
    log_field(ex, "f0", "x" * (MAX_LOG_VALUE + 10))
    fields = ex.stash[LOG_FIELDS]
    assert list(fields) == [f"f{i}" for i in range(MAX_LOG_FIELDS)]
    assert fields["f0"] == "x" * MAX_LOG_VALUE
    for bad in ("", "Upper", "1st", "with-dash", "a" * 41, "status", "trace_id", "ts", 'q"'):
        with pytest.raises(ValueError):
            log_field(ex, bad, "v")
    with pytest.raises(TypeError):
        log_field(ex, "count", 3)  # type: ignore[arg-type]


async def test_a_plugin_renames_the_server_span_after_what_the_call_did(live: Tracing) -> None:
    """The SERVER span is named as the plugin said (OpenTelemetry: ``query GetUser``), cut at
    MAX_SPAN_NAME; the CLIENT span keeps the sidecar's name."""

    async def naming(exchange: Exchange, call_next: Handler) -> Response:
        name_span(exchange, "query GetUser")
        return await call_next(exchange)

    complete(await chain(context(live), Upstream(), naming)(make_exchange("POST", "/graphql")))
    (server,) = of_kind(live, SpanKind.SERVER)
    (client,) = of_kind(live, SpanKind.CLIENT)
    assert server.name == "query GetUser"
    assert client.name == "POST pay"

    async def long_name(exchange: Exchange) -> Response:
        name_span(exchange, "q" * (MAX_SPAN_NAME + 50))
        raise UpstreamTimeout("slow")

    with pytest.raises(UpstreamTimeout):
        await chain(context(live), long_name)(make_exchange("POST", "/graphql"))
    names = [s.name for s in of_kind(live, SpanKind.SERVER)]
    assert names == ["query GetUser", "q" * MAX_SPAN_NAME]  # a failed call's too
    with pytest.raises(ValueError):
        name_span(make_exchange(), "")


async def test_the_server_span_keeps_its_name_when_no_plugin_renames_it(live: Tracing) -> None:
    """Without name_span the SERVER span is ``<method> <route>`` as before."""
    complete(await chain(context(live), Upstream())(make_exchange("GET", "/x")))
    (server,) = of_kind(live, SpanKind.SERVER)
    assert server.name == "GET pay"


async def test_a_retry_veto_keeps_a_get_from_being_sent_twice() -> None:
    """``allow_retry(exchange, False)``: a call the upstream must not receive twice is sent
    once, whatever its method, and counted as a non_idempotent skip."""
    f, metrics, _ = build({"attempts": 3})
    up = Script(status(503))
    ex = make_exchange("GET")
    allow_retry(ex, False)
    assert (await f(ex, up)).status == 503 and up.calls == 1
    assert sample(metrics, "sidecar_retries_skipped_total", reason="non_idempotent") == 1


async def test_a_retry_permit_lets_a_post_without_key_be_retried() -> None:
    """``allow_retry(exchange, True)``: a POST the plugin knows is safe to repeat (a GraphQL
    query) is retried with no Idempotency-Key and no ``retry.non_idempotent``."""
    f, _, _ = build({"attempts": 3})
    up = Script(status(503), status(200))
    ex = make_exchange("POST", body=b"{}")
    allow_retry(ex, True)
    assert (await f(ex, up)).status == 200 and up.calls == 2
    plain = Script(status(503), status(200))
    assert (await f(make_exchange("POST", body=b"{}"), plain)).status == 503
    assert plain.calls == 1  # without the permit, the method rule still applies
