"""``RequestBody``: a streaming request body with back-pressure and ``100 Continue`` on demand."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.errors import BodyTooLarge
from sidecar.listeners.http_body import BODY_HIGH_WATER, BODY_LOW_WATER, RequestBody


class Source:
    """Records what the body asked of its connection."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def pause_body(self) -> None:
        self.events.append("pause")

    def resume_body(self) -> None:
        self.events.append("resume")

    def send_continue(self) -> None:
        self.events.append("100")


async def _read_all(body: RequestBody) -> bytes:
    return b"".join([chunk async for chunk in body])


async def test_parts_fed_before_and_after_dispatch_arrive_in_order() -> None:
    """The bytes that came with the head come first, then the rest as it arrives, then the end."""
    src = Source()
    body = RequestBody(src, [b"ab", b"cd"], expect_continue=False)
    reader = asyncio.create_task(_read_all(body))
    await asyncio.sleep(0)
    body.feed(b"ef")
    body.feed_eof()
    assert await asyncio.wait_for(reader, 1) == b"abcdef"


async def test_reading_pauses_past_high_water_and_resumes_below_low_water() -> None:
    """A slow reader stops the app's socket being read rather than the sidecar buffering it."""
    src = Source()
    body = RequestBody(src, [], expect_continue=False)
    chunk = b"x" * (BODY_HIGH_WATER // 4)
    for _ in range(5):
        body.feed(chunk)
    assert src.events.count("pause") >= 1 and "resume" not in src.events
    body.feed_eof()
    drained = 0
    async for part in body:
        drained += len(part)
        if "resume" in src.events:
            break
    assert body.size < BODY_LOW_WATER
    assert drained >= 5 * len(chunk) - BODY_LOW_WATER


async def test_failure_reaches_the_reader_and_drops_buffered_bytes() -> None:
    """Past the body limit the reader gets the error; nothing after a broken body is forwarded."""
    body = RequestBody(Source(), [b"early"], expect_continue=False)
    body.fail(BodyTooLarge("request body over 10 bytes"))
    body.fail(BodyTooLarge("a second failure does not replace the first"))
    assert body.failed
    with pytest.raises(BodyTooLarge, match="over 10 bytes"):
        await _read_all(body)


async def test_100_continue_is_sent_on_first_read_only() -> None:
    """`Expect: 100-continue` is answered when a handler wants the body, once, never before."""
    src = Source()
    body = RequestBody(src, [], expect_continue=True)
    assert src.events == []
    reader = asyncio.create_task(_read_all(body))
    await asyncio.sleep(0)
    assert src.events == ["100"]
    body.feed(b"data")
    body.feed_eof()
    assert await asyncio.wait_for(reader, 1) == b"data"
    assert src.events.count("100") == 1


async def test_100_continue_is_not_sent_when_the_body_already_came() -> None:
    """An app that sent its body without waiting gets no pointless interim response."""
    src = Source()
    body = RequestBody(src, [b"data"], expect_continue=True)
    body.feed_eof()
    assert await _read_all(body) == b"data"
    assert "100" not in src.events
