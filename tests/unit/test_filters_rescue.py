"""The ``rescue`` filter: the one place errors become responses."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sidecar import answers
from sidecar.api import FrontTraits
from sidecar.errors import BadRequest, Overloaded, SidecarError, UpstreamTimeout
from sidecar.exchange import Exchange, Headers, Response
from sidecar.filters import rescue
from sidecar.testing import make_exchange, make_route_context, on_front, responder


def raising(error: BaseException):  # type: ignore[no-untyped-def]
    async def call_next(exchange: Exchange) -> Response:
        raise error

    return call_next


async def test_sidecar_error_becomes_its_status_with_reason_header_and_body() -> None:
    """An app can tell a sidecar decision from an upstream answer by `x-sidecar-error`."""
    f = rescue.factory(make_route_context())
    resp = await f(make_exchange(), raising(UpstreamTimeout("no response within 5s")))
    assert resp.status == 504
    assert resp.headers.get("x-sidecar-error") == "upstream_timeout"
    assert resp.headers.get("content-type") == "text/plain; charset=utf-8"
    assert resp.body == b"upstream_timeout: no response within 5s\n"
    assert resp.length == len(resp.body)
    assert resp.close is False


async def test_error_headers_and_connection_close_are_kept() -> None:
    """`Retry-After` on an overload reaches the app; malformed input closes the connection."""
    f = rescue.factory(make_route_context())
    resp = await f(make_exchange(), raising(Overloaded("busy", headers=(("retry-after", "1"),))))
    assert (resp.status, resp.headers.get("retry-after")) == (503, "1")
    resp = await f(make_exchange(), raising(BadRequest("bad")))
    assert (resp.status, resp.close) == (400, True)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_unknown_exception_becomes_500_internal_and_is_logged_with_route() -> None:
    """A bug in a filter answers 500 `internal` and leaves a log line that says where."""
    logger = logging.getLogger("sidecar.rescue")
    records = Records()
    logger.addHandler(records)
    try:
        f = rescue.factory(make_route_context(route="pay-route"))
        resp = await f(make_exchange(upstream="test"), raising(KeyError("boom")))
    finally:
        logger.removeHandler(records)
    assert resp.status == 500
    assert resp.headers.get("x-sidecar-error") == "internal"
    assert b"boom" not in resp.body  # internals stay in the log, not in the app's response
    (record,) = records.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert record.fields == {"route": "pay-route", "upstream": "test"}  # type: ignore[attr-defined]


async def test_cancellation_passes_through() -> None:
    """The app going away is not an error: nothing is answered, the cancellation propagates."""
    f = rescue.factory(make_route_context())
    with pytest.raises(asyncio.CancelledError):
        await f(make_exchange(), raising(asyncio.CancelledError()))


async def test_success_passes_through_untouched() -> None:
    """A normal answer is returned as is (the same object, no copy)."""
    f = rescue.factory(make_route_context())
    seen: list[Exchange] = []
    ex = make_exchange()
    resp = await f(ex, responder(201, b"made", seen=seen))
    assert (resp.status, resp.body, seen) == (201, b"made", [ex])


async def test_rescue_hook_answer_wins_and_a_raising_hook_falls_back_to_500() -> None:
    """A plugin's `sidecar_rescue` answer is used; a hook that raises cannot break the call."""

    def hook(exchange: Exchange, error: BaseException) -> Response | None:
        if isinstance(error, KeyError):
            return Response(418, Headers([("x-from", "hook")]), b"teapot")
        if isinstance(error, ValueError):
            raise RuntimeError("hook bug")
        return None

    f = rescue.factory(make_route_context(rescue_hook=hook))
    resp = await f(make_exchange(), raising(KeyError("k")))
    assert (resp.status, resp.headers.get("x-from")) == (418, "hook")
    resp = await f(make_exchange(), raising(ValueError("v")))
    assert (resp.status, resp.headers.get("x-sidecar-error")) == (500, "internal")
    resp = await f(make_exchange(), raising(LookupError("nobody answers")))
    assert resp.status == 500


async def test_every_error_code_is_a_stable_header_value() -> None:
    """Each typed error says its reason in a header-safe token."""
    import sidecar.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, SidecarError):
            resp = answers.error_response(cls("x"))
            code = resp.headers.get("x-sidecar-error")
            assert code and code.replace("_", "").isalpha() and code.islower(), name
            assert resp.status == cls.status


async def test_each_front_answers_a_sidecar_decision_its_own_way() -> None:
    """A front's own error answer (a plugin front's, the gRPC port's) is what its calls get."""

    def answer(error: SidecarError) -> Response:
        return Response(299, Headers([("x-front", "events"), ("x-code", error.code)]))

    events = FrontTraits("events", error_response=answer)
    f = rescue.factory(on_front(make_route_context(), events))
    resp = await f(make_exchange(), raising(UpstreamTimeout("no response within 5s")))
    assert (resp.status, resp.headers.get("x-code")) == (299, "upstream_timeout")
    resp = await f(make_exchange(), raising(RuntimeError("a bug")))
    assert (resp.status, resp.headers.get("x-code")) == (299, "internal")
