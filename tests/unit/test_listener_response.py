"""``write_response``: what happens to a response whose app connection is already gone."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sidecar.exchange import Exchange, Headers, Response
from sidecar.listeners.http_response import write_response


async def test_a_response_for_an_app_that_went_away_still_runs_its_completion_callbacks() -> None:
    """The access log and tracing hear about a call whose app left before the answer (not ok,
    nothing sent), and the streamed body is closed, so no span or line is lost."""
    closed: list[bool] = []

    async def body() -> Any:
        try:
            yield b"never"
        finally:
            closed.append(True)

    stream = body()
    await stream.__anext__()  # started, so closing it runs its finally
    resp = Response(200, Headers(), stream, length=None)
    heard: list[tuple[bool, int]] = []
    resp.on_complete = [lambda ok, sent: heard.append((ok, sent))]
    conn: Any = SimpleNamespace(transport=None, closed=True)
    keep = await write_response(conn, Exchange("GET", "/", Headers()), resp)
    assert keep is False
    assert heard == [(False, 0)]
    assert closed == [True]
