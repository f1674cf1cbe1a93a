"""Writing responses to the app: HTTP/1.1 framing, and the refusal a malformed request gets.

A response is framed by what is known about its body, never by headers a handler set:
``Content-Length`` when the length is known, chunked for a stream of unknown length to an HTTP/1.1
app, close-delimited to an HTTP/1.0 one. HEAD, 204 and 304 answers carry no body (HEAD and 304
keep the length the GET would have had); a handler's interim (1xx) or out-of-range status as a
final answer becomes a 502, since it would desynchronise the app. A streamed body that ends short
of its announced length closes the connection, so the app sees a truncated answer, not a wrong one.

Not here: deciding to close (the connection does, from what this returns), or what the response
says.
"""

from __future__ import annotations

__all__ = ["REFUSED", "refusal_bytes", "write_response", "write_whole"]

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from ..errors import SidecarError
from ..exchange import Exchange, Headers, Response, close_body, completed
from ..http1 import FRAMING, STATUS_LINES

if TYPE_CHECKING:
    from .http_connection import HttpConnection

log = logging.getLogger("sidecar.listener")

_NO_BODY_STATUS: Final = frozenset({204, 304})

#: stands in for the request a queued refusal answers (it was never parsed into one).
REFUSED: Final = Exchange("GET", "/", Headers())


def write_whole(conn: HttpConnection, ex: Exchange, resp: Response) -> bool | None:
    """The common answer written at once, with no coroutine of its own: a body in memory, an
    app still connected, a final status. Whether the connection stays open after it; ``None``
    for any other response, which :func:`write_response` writes."""
    transport = conn.transport
    body = resp.body
    if transport is None or conn.closed or type(body) is not bytes:
        return None
    status = resp.status
    line = STATUS_LINES.get(status) if status >= 200 else None
    if line is None:
        return None
    out, keep, no_body, _ = _framed(conn, ex, resp, status, line)
    _write_with_body(conn, out, resp, body, no_body)
    return keep


def _write_with_body(
    conn: HttpConnection, out: list[bytes], resp: Response, body: bytes, no_body: bool
) -> None:
    """The framed head and ``body`` in one write (at once, or with the pass's other writes at
    its end: :meth:`~sidecar.flow_control.FlowControl.write_later`), and the response's end
    heard."""
    if body and not no_body:
        out.append(body)
    conn.write_later(b"".join(out))
    if resp.on_complete:
        completed(resp, True, 0 if no_body else len(body))


async def write_response(conn: HttpConnection, ex: Exchange, resp: Response) -> bool:
    """Frame and write ``resp``; ``False`` when the connection must close after it."""
    kept = write_whole(conn, ex, resp)
    if kept is not None:
        return kept
    transport = conn.transport
    if transport is None or conn.closed:
        # the app went away first: its callbacks (access log, tracing) still hear the end
        await close_body(resp)
        completed(resp, False, 0)
        return False
    status = resp.status
    line = STATUS_LINES.get(status) if status >= 200 else None
    if line is None:
        # an interim or out-of-range status as the final answer would desynchronise the app
        log.error("a handler returned status %s; sent 502 instead", status)
        await close_body(resp)
        resp.status = 502
        resp.body = b""
        kept = write_whole(conn, ex, resp)
        if kept is None:  # the app went away while the body was closed
            completed(resp, False, 0)
            return False
        return kept
    body = resp.body
    out, keep, no_body, chunked = _framed(conn, ex, resp, status, line)
    if isinstance(body, bytes):  # (a bytes subclass: what write_whole leaves to this path)
        _write_with_body(conn, out, resp, body, no_body)
        return keep
    conn.flush_writes()  # the responses before it go first
    transport.write(b"".join(out))
    if no_body:
        await close_body(resp)
        completed(resp, True, 0)
        return keep
    return await _stream_body(conn, ex, resp, body, chunked) and keep


def _framed(
    conn: HttpConnection, ex: Exchange, resp: Response, status: int, line: bytes
) -> tuple[list[bytes], bool, bool, bool]:
    """The head of ``resp`` as parts to join, then whether the connection stays open, whether
    the answer has no body (HEAD, 204, 304) and whether its body goes chunked."""
    keep = (
        ex.keep_alive
        and not resp.close
        # the app is still sending a body nobody read: the connection cannot be reused
        and conn.body_incomplete is not ex
        # draining: requests already read are answered, the last one says Connection: close
        and (not conn.listener.draining or conn.more_owed())
    )
    headers = resp.headers
    wire = headers.unread_wire()
    if wire is not None:
        # an upstream's headers nobody read: its bytes as they came, no str round trip
        out = [line, _wire_block(conn, wire)]
    else:
        # the header lines as one str, encoded once
        fields = "".join([f"{name}: {value}\r\n" for name, value in headers if name not in FRAMING])
        out = [line, fields.encode("latin-1")]
    body = resp.body
    no_body = ex.method == "HEAD" or status in _NO_BODY_STATUS
    length = len(body) if isinstance(body, bytes) and not no_body else resp.length
    chunked = False
    if status == 204 or (status == 304 and not length):
        pass  # no body and no length to announce
    elif length is not None:
        out.append(b"content-length: %d\r\n" % length)
    elif not no_body:
        if ex.http_version == "1.1":
            chunked = True
            out.append(b"transfer-encoding: chunked\r\n")
        else:
            keep = False  # an HTTP/1.0 app reads until the close
    if not keep:
        out.append(b"connection: close\r\n")
    elif ex.http_version == "1.0":
        out.append(b"connection: keep-alive\r\n")
    out.append(b"\r\n")
    return out, keep, no_body, chunked


#: the longest header block an app connection keeps for its next answer: an upstream's usual
#: few headers, not a hostile 64 KB (every idle connection holds its last)
_KEPT_BLOCK_MAX: Final = 1024


def _wire_block(conn: HttpConnection, wire: list[tuple[bytes, bytes]]) -> bytes:
    """The header lines of an upstream's unread headers, as one block. An upstream answers
    with the same headers call after call (its ``Date`` changes once a second): the last
    block is written again while the headers equal the pairs it was made from."""
    kept = conn.last_wire
    if kept is not None and _same_wire(wire, kept):
        return conn.last_block
    # the list made whole at once and filled in place (appends would grow it several times)
    parts = [b""] * (4 * len(wire))
    at = 0
    for name, value in wire:
        parts[at] = name
        parts[at + 1] = b": "
        parts[at + 2] = value
        parts[at + 3] = b"\r\n"
        at += 4
    block = b"".join(parts)
    if len(block) <= _KEPT_BLOCK_MAX:
        conn.last_wire = wire  # never changed: a wire form is replaced, not edited, once read
        conn.last_block = block
    else:
        conn.last_wire = None
        conn.last_block = b""
    return block


def _same_wire(wire: list[tuple[bytes, bytes]], kept: list[tuple[bytes, bytes]]) -> bool:
    """``wire == kept``, pair by pair (a list comparison of tuples is generic, and slower).
    The request side's ``http_adapter._same_pairs`` is its ``str`` twin, typed apart so that
    each compiles to its own type's comparison."""
    if len(wire) != len(kept):
        return False
    for i in range(len(wire)):
        name, value = wire[i]
        kept_name, kept_value = kept[i]
        if name != kept_name or value != kept_value:
            return False
    return True


async def _stream_body(
    conn: HttpConnection, ex: Exchange, resp: Response, body: Any, chunked: bool
) -> bool:
    transport = conn.transport
    assert transport is not None
    sent = 0
    ok = False
    try:
        async for chunk in body:
            if not chunk:
                continue
            sent += len(chunk)
            if chunked:
                transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            else:
                transport.write(chunk)
            if conn.write_paused:
                await conn.drain()
        if chunked:
            transport.write(b"0\r\n\r\n")
        ok = resp.length is None or sent == resp.length
    except (asyncio.CancelledError, ConnectionError):
        raise
    except SidecarError as e:
        log.info(
            "response body aborted",
            extra={"fields": {"upstream": ex.upstream, "reason": e.code, "detail": e.detail}},
        )
    except Exception:
        log.exception("response body stream failed", extra={"fields": {"upstream": ex.upstream}})
    finally:
        if not ok:
            await close_body(resp)
        completed(resp, ok, sent)
    return ok


def refusal_bytes(status: int, resp: Response) -> bytes:
    """The whole refusal (``resp`` from ``error_response``), closing, ready for one write."""
    head = [STATUS_LINES[status]]
    for name, value in resp.headers:
        head.append(f"{name}: {value}\r\n".encode("latin-1"))
    assert isinstance(resp.body, bytes)
    head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(resp.body))
    head.append(resp.body)
    return b"".join(head)
