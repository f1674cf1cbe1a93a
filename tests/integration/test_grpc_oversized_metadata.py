"""Review of the gRPC port refusing a call whose metadata is over ``grpc.max_metadata_size``
on its own (RESOURCE_EXHAUSTED, ``x-sidecar-error: headers_too_large``), driven by a raw HTTP/2
client against a ``sidecar run`` child process: what the app sends around such a call (its
DATA, an END_STREAM on the HEADERS, CONTINUATION frames, a reset, a stream id used again) and
SIGTERM leave the connection and the app's other calls as a user expects."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from sidecar.testing import SidecarProcess, wait_until
from tests.integration.grpc_upstream import SERVICE, EchoUpstream
from tests.integration.h2_raw_client import RawH2, grpc_message

LIMIT = 4096
PATH = f"/{SERVICE}/Unary"
RESOURCE_EXHAUSTED, PROTOCOL_ERROR, STREAM_CLOSED, REFUSED_STREAM = "8", 1, 5, 7


def request(extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", PATH),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *(extra or []),
    ]


#: metadata over the 4 KiB limit; its block (Huffman-coded, under the raw bound of twice the
#: limit) is sent as HEADERS and CONTINUATION frames of 1000 bytes (RawH2.headers)
BIG = [("x-big", "v" * 3000), ("x-more", "w" * 2000)]


@contextmanager
def echo_in_a_thread() -> Iterator[str]:
    """An echo upstream on a loop of its own thread (the raw client here blocks); its URL."""
    ready = threading.Event()
    loops: list[asyncio.AbstractEventLoop] = []
    urls: list[str] = []
    done: list[asyncio.Event] = []

    async def main() -> None:
        async with EchoUpstream() as up:
            urls.append(up.url)
            loops.append(asyncio.get_running_loop())
            done.append(asyncio.Event())
            ready.set()
            await done[0].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield urls[0]
    finally:
        loops[0].call_soon_threadsafe(done[0].set)
        thread.join(10)


def sidecar_config(url: str) -> dict[str, Any]:
    return {
        "upstreams": {"echo": {"adapter": "grpc", "url": url, "services": [SERVICE]}},
        "grpc": {"address": "127.0.0.1:0", "server": "h2", "max_metadata_size": LIMIT},
        "telemetry": {"access_log": {"enabled": True}},
        "shutdown": {"app_quiet_period": "0s", "drain_timeout": "10s"},
    }


@pytest.fixture(scope="module")
def sidecar() -> Iterator[SidecarProcess]:
    """A sidecar whose gRPC port (h2 front) routes to an echo upstream."""
    with echo_in_a_thread() as url, SidecarProcess(sidecar_config(url)) as p:
        yield p


def refused(conn: RawH2, sid: int) -> None:
    """Stream ``sid`` was answered RESOURCE_EXHAUSTED, trailers only, ending it."""
    conn.read_until(lambda: conn.answered(sid))
    answer = conn.answers[sid]
    fields = answer.fields()
    assert answer.ended and fields[":status"] == "200", (answer, fields)
    assert fields["grpc-status"] == RESOURCE_EXHAUSTED
    assert fields["x-sidecar-error"] == "headers_too_large"


def echoed(conn: RawH2, sid: int, payload: bytes) -> None:
    """A good call on ``sid`` goes through the upstream and back."""
    conn.headers(sid, request())
    conn.data(sid, grpc_message(payload), end=True)
    conn.read_until(lambda: conn.answered(sid))
    answer = conn.answers[sid]
    assert answer.fields().get("grpc-status") == "0", answer
    assert payload in answer.data


def test_data_after_refused_headers_gives_the_window_back(sidecar: SidecarProcess) -> None:
    """An app that sent its messages right behind oversized HEADERS (as clients do) is not
    stalled: the sidecar gives back the flow-control window those bytes took, so more than the
    whole connection window (16 MiB) sent on refused calls still lets the next call through."""
    conn = RawH2(sidecar.grpc_port)
    try:
        conn.read_until(lambda: conn.stream_initial > 65535)
        sid = 1
        for _ in range(20):  # 20 x 1 MiB, past the 16 MiB connection window
            conn.headers(sid, request(BIG))
            conn.data(sid, b"\0" * conn.stream_initial, end=False)
            refused(conn, sid)
            sid += 2
        echoed(conn, sid, b"after the flood of refused data")
        assert conn.goaway is None and not conn.closed
    finally:
        conn.close()


def test_end_stream_reset_and_continuation_around_a_refused_call(sidecar: SidecarProcess) -> None:
    """Oversized HEADERS with END_STREAM, split over CONTINUATION, or reset by the app right
    after: each refused (or dropped) alone, and the connection's next call is served."""
    conn = RawH2(sidecar.grpc_port)
    try:
        conn.headers(1, request(BIG), end=True)
        refused(conn, 1)
        conn.headers(3, request([("x-huge", "h" * 7000)]))
        conn.reset(3)
        conn.headers(5, request([("x-a", "a" * 3000), ("x-b", "b" * 3000)]))
        conn.data(5, grpc_message(b"late"), end=True)
        refused(conn, 5)
        echoed(conn, 7, b"still served")
        assert conn.goaway is None and not conn.closed
    finally:
        conn.close()


def test_an_oversized_block_on_a_refused_calls_stream_id_ends_the_connection(
    sidecar: SidecarProcess,
) -> None:
    """A stream id used again after its call was refused is a connection error (GOAWAY), as
    for any closed stream; the sidecar goes on serving new connections."""
    conn = RawH2(sidecar.grpc_port)
    try:
        conn.headers(1, request(BIG), end=True)
        refused(conn, 1)
        conn.headers(1, request(BIG), end=True)
        conn.read_until(lambda: conn.goaway is not None)
        assert conn.goaway in (PROTOCOL_ERROR, STREAM_CLOSED, 11)
    finally:
        conn.close()
    fresh = RawH2(sidecar.grpc_port)
    try:
        echoed(fresh, 1, b"a new connection")
    finally:
        fresh.close()


def _metric(admin_url: str, pattern: str) -> float:
    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=5) as r:  # noqa: S310
        text = r.read().decode()
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_refused_call_is_counted_and_access_logged(sidecar: SidecarProcess) -> None:
    """The refused call has its access-log line (its path, gRPC code 8, the error's code)
    and counts in sidecar_requests_total and sidecar_errors_total under the gRPC listener."""
    before = _metric(
        sidecar.admin_url, r'^sidecar_errors_total\{[^}]*reason="headers_too_large"[^}]*\} (\S+)$'
    )
    conn = RawH2(sidecar.grpc_port)
    try:
        conn.headers(1, request(BIG), end=True)
        refused(conn, 1)
    finally:
        conn.close()
    after = _metric(
        sidecar.admin_url, r'^sidecar_errors_total\{[^}]*reason="headers_too_large"[^}]*\} (\S+)$'
    )
    assert after == before + 1

    def logged() -> list[dict[str, Any]]:
        return [x for x in sidecar.log_lines(stdout=True) if x.get("error") == "headers_too_large"]

    with contextlib.suppress(TimeoutError):  # the assertion below says what was logged instead
        wait_until(lambda: bool(logged()), timeout=10, interval=0.05)
    lines = logged()
    assert lines, sidecar.stdout_path.read_text()[-2000:]
    assert (lines[-1].get("path"), lines[-1].get("grpc_status")) == (PATH, 8), lines[-1]


def test_an_oversized_call_while_draining_is_refused_stream(sidecar: SidecarProcess) -> None:
    """SIGTERM with a call in flight: an oversized call opened after the GOAWAY gets
    REFUSED_STREAM (the app's client retries it elsewhere), the call in flight finishes, and
    the sidecar exits cleanly."""
    with echo_in_a_thread() as url, SidecarProcess(sidecar_config(url)) as p:
        conn = RawH2(p.grpc_port)
        try:
            conn.headers(1, request(), end=False)  # open: its message comes later
            p.send(signal.SIGTERM)
            conn.read_until(lambda: conn.goaway is not None)
            conn.headers(3, request(BIG), end=True)
            conn.read_until(lambda: conn.answered(3))
            assert conn.answers[3].reset == REFUSED_STREAM
            conn.data(1, grpc_message(b"in flight"), end=True)
            conn.read_until(lambda: conn.answered(1))
            assert conn.answers[1].fields().get("grpc-status") == "0"
        finally:
            conn.close()
        assert p.proc is not None and p.proc.wait(20) == 0
