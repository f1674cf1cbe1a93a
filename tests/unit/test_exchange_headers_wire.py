"""Response headers kept in wire form (the upstream's bytes) until first read: every reader sees
what the ``str`` form shows, and the app receives the same bytes either way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sidecar.config.models import HttpListenerConfig
from sidecar.exchange import Exchange, Headers, Response
from sidecar.listeners.http import HttpListener
from sidecar.listeners.http_connection import HttpConnection
from sidecar.listeners.http_response import write_whole
from sidecar.routing import RouteTable
from sidecar.telemetry.metrics import Metrics
from tests.unit.fake_transport import FakeTransport, respond, standalone

#: as an upstream connection hands them over: lower-case names, repeated names, an empty value,
#: octets outside ASCII (latin-1), a value holding ": "
WIRE = [
    (b"server", b"nginx"),
    (b"set-cookie", b"a=1"),
    (b"x-latin", b"caf\xe9 \xff"),
    (b"set-cookie", b"b=2"),
    (b"x-empty", b""),
    (b"x-colon", b"a: b"),
]


def wire_headers() -> Headers:
    return Headers.from_wire(list(WIRE))


def str_headers() -> Headers:
    return Headers([(n.decode("latin-1"), v.decode("latin-1")) for n, v in WIRE])


#: each operation of the public API, with what it returns (mutators return None)
OPERATIONS: dict[str, Callable[[Headers], Any]] = {
    "get": lambda h: h.get("set-cookie"),
    "get latin-1": lambda h: h.get("x-latin"),
    "get empty": lambda h: h.get("x-empty"),
    "get absent": lambda h: h.get("nope"),
    "get absent with default": lambda h: h.get("nope", "d"),
    "get is case-sensitive": lambda h: h.get("Server"),
    "get_all": lambda h: h.get_all("set-cookie"),
    "get_all absent": lambda h: h.get_all("nope"),
    "add": lambda h: h.add("X-New", "v"),
    "add existing": lambda h: h.add("Set-Cookie", "c=3"),
    "set": lambda h: h.set("Set-Cookie", "only"),
    "set new": lambda h: h.set("x-new", "v"),
    "remove": lambda h: h.remove("SET-COOKIE"),
    "remove absent": lambda h: h.remove("nope"),
    "contains": lambda h: "x-colon" in h,
    "contains absent": lambda h: "nope" in h,
    "contains bytes": lambda h: b"server" in h,
    "iter": lambda h: list(h),
    "len": lambda h: len(h),
    "items": lambda h: list(h.items()),
    "items appended to": lambda h: h.items().append(("x-new", "v")),
    "copy": lambda h: list(h.copy()),
    "copy is independent": lambda h: h.copy().add("x-new", "v"),
    "repr": lambda h: repr(h),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_a_wire_form_header_map_behaves_like_the_str_one(operation: str) -> None:
    """A filter or plugin reading or changing a response's headers gets the same answer, and
    leaves the same headers, whether they were still the upstream's bytes or already str."""
    op = OPERATIONS[operation]
    plain, wire = str_headers(), wire_headers()
    assert op(wire) == op(plain)
    assert wire.unread_wire() is None  # read by the operation: str from now on
    assert wire.items() == plain.items()
    assert repr(wire) == repr(plain)


def test_wire_form_is_decoded_once_and_then_is_the_str_pairs() -> None:
    """Reads after the first see one list of pairs, so a change through ``items()`` stays."""
    h = wire_headers()
    assert h.unread_wire() == WIRE
    assert h.get("server") == "nginx"
    pairs = h.items()
    pairs.append(("x-added", "1"))
    assert h.items() is pairs
    assert h.get("x-added") == "1" and len(h) == len(WIRE) + 1
    assert h.unread_wire() is None


def test_str_headers_have_no_wire_form() -> None:
    """Headers a handler built from str are written from their str pairs."""
    assert Headers([("a", "b")]).unread_wire() is None
    assert Headers.wrap([("a", "b")]).unread_wire() is None
    assert Headers().unread_wire() is None


async def _written(resp: Response, method: str = "GET") -> bytes:
    """What the app receives for ``resp`` on a keep-alive HTTP/1.1 connection."""
    conn = HttpConnection(HttpListener(HttpListenerConfig(), RouteTable({}), Metrics()))
    transport = FakeTransport(conn)
    conn.transport = transport  # type: ignore[assignment]
    assert write_whole(conn, Exchange(method, "/", Headers()), resp) is True
    return b"".join(transport.written)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_an_unread_wire_form_is_written_byte_identical_to_the_materialised_one(
    method: str,
) -> None:
    """The app gets the same response head whether or not anything read the headers."""
    unread = Response(200, wire_headers(), b"body")
    read = Response(200, wire_headers(), b"body")
    assert len(read.headers) == len(WIRE)  # materialised
    assert read.headers.unread_wire() is None and unread.headers.unread_wire() is not None
    sent = await _written(unread, method)
    assert sent == await _written(read, method)
    assert sent.startswith(
        b"HTTP/1.1 200 OK\r\nserver: nginx\r\nset-cookie: a=1\r\nx-latin: caf\xe9 \xff\r\n"
        b"set-cookie: b=2\r\nx-empty: \r\nx-colon: a: b\r\ncontent-length: 4\r\n\r\n"
    )


#: an upstream answer with mixed-case names, hop-by-hop headers (one named by Connection),
#: a keep-alive hint and a latin-1 value
UPSTREAM = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nConnection: X-Private, keep-alive\r\n"
    b"X-Private: secret\r\nKeep-Alive: timeout=5\r\nX-Latin: caf\xe9\r\nContent-Length: 2\r\n"
    b"Proxy-Authenticate: Basic\r\nSet-Cookie: a=1\r\n\r\nok"
)


async def test_upstream_headers_arrive_lower_case_without_hop_by_hop_and_unread() -> None:
    """The app and every filter see the upstream's end-to-end headers only, names lower-case,
    values as latin-1, exactly as before they were kept as bytes."""
    conn, _, _ = standalone()
    resp = respond(conn, UPSTREAM).result()
    assert resp.headers.unread_wire() == [
        (b"server", b"nginx"),
        (b"x-latin", b"caf\xe9"),
        (b"set-cookie", b"a=1"),
    ]
    assert conn.keep_alive_hint == 5.0 and conn.reusable
    assert list(resp.headers) == [
        ("server", "nginx"),
        ("x-latin", "caf\xe9"),
        ("set-cookie", "a=1"),
    ]


async def test_an_upstream_answer_reaches_the_app_the_same_read_or_unread() -> None:
    """Reading a response header in a filter does not change a byte the app receives."""
    first, _, _ = standalone()
    unread = respond(first, UPSTREAM).result()
    second, _, _ = standalone()
    read = respond(second, UPSTREAM).result()
    assert read.headers.get("x-private") is None  # materialises it
    assert await _written(unread) == await _written(read)


async def test_a_chunked_coding_padded_with_a_latin1_space_is_still_chunked() -> None:
    """``Transfer-Encoding`` is judged as str, as before: a value ending in a no-break space
    (0xA0) is ``chunked``, not a coding refused as unsupported."""
    conn, _, _ = standalone()
    fut = respond(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\xa0\r\n\r\n0\r\n\r\n")
    resp = fut.result()
    assert resp.status == 200 and resp.length is None and len(resp.headers) == 0


async def test_headers_named_by_several_connection_headers_are_all_dropped() -> None:
    """Every header any ``Connection`` line names stays between the sidecar and the upstream,
    whatever the case of the name."""
    conn, _, _ = standalone()
    raw = (
        b"HTTP/1.1 200 OK\r\nConnection: X-A\r\nx-a: 1\r\nConnection: X-B, keep-alive\r\n"
        b"X-b: 2\r\nX-C: 3\r\nContent-Length: 2\r\n\r\nok"
    )
    for _ in range(2):  # and again on the same connection, kept alive
        resp = respond(conn, raw).result()
        assert resp.headers.unread_wire() == [(b"x-c", b"3")]


def _each_gets_its_own(conn: HttpConnection, heads: list[bytes]) -> None:
    """Requests with these header lines (after ``host: up``), read in one go, each get exactly
    its own headers, names lower-cased."""
    # read in one go: the worker has not run yet, so every exchange is still in the queue
    conn.data_received(b"".join(b"GET /x HTTP/1.1\r\nhost: up\r\n" + h + b"\r\n" for h in heads))
    got = [list(ex.headers) for ex in conn.queue if isinstance(ex, Exchange)]
    for head, headers in zip(heads, got, strict=True):
        sent = [line.split(b": ") for line in head.split(b"\r\n") if line]
        assert headers == [("host", "up")] + [(k.decode().lower(), v.decode()) for k, v in sent]
    conn.connection_lost(None)


async def test_each_request_on_a_connection_has_its_own_header_names() -> None:
    """Names are remembered by place from one request to the next on a connection: a request
    whose names differ, move, or are fewer or more still gets exactly its own, lower-cased."""
    conn = HttpConnection(HttpListener(HttpListenerConfig(), RouteTable({}), Metrics()))
    transport = FakeTransport(conn)
    conn.transport = transport  # type: ignore[assignment]
    heads = [
        b"X-A: 1\r\nX-B: 2\r\n",
        b"X-B: 3\r\nX-A: 4\r\n",  # the same names, swapped
        b"X-C: 5\r\n",  # fewer
        b"X-C: 6\r\nX-Long-" + b"n" * 80 + b": 7\r\nX-D: 8\r\n",  # more, one too long to keep
        b"x-c: 9\r\nX-Long-" + b"n" * 80 + b": 10\r\nX-E: 11\r\n",
    ]
    _each_gets_its_own(conn, heads)


async def test_request_headers_lose_their_hop_by_hop_ones_and_all_count_toward_the_limit() -> None:
    """The headers an app's request carries on are its end-to-end ones (``Host`` kept, any
    name ``Connection`` lists dropped), while every line, hop-by-hop or not, counts toward
    ``max_headers``: one past it is refused with 431."""
    cfg = HttpListenerConfig(max_headers=5)
    conn = HttpConnection(HttpListener(cfg, RouteTable({}), Metrics()))
    transport = FakeTransport(conn)
    conn.transport = transport  # type: ignore[assignment]
    five = b"Host: up\r\nConnection: keep-alive, X-Mine\r\nX-Mine: 1\r\nTE: trailers\r\nX-A: 2\r\n"
    conn.data_received(b"GET /x HTTP/1.1\r\n" + five + b"\r\n")
    conn.data_received(b"GET /x HTTP/1.1\r\nKeep-Alive: timeout=5\r\n" + five + b"\r\n")
    first, second = list(conn.queue)
    assert isinstance(first, Exchange)
    assert list(first.headers) == [("host", "up"), ("x-a", "2")]
    assert first.host == "up"
    assert isinstance(second, Response) and second.status == 431
    conn.connection_lost(None)


async def test_an_app_connection_writes_each_answer_with_its_own_headers() -> None:
    """Answers on one app connection with equal headers share their header lines; an answer
    whose headers differ in a value, a name or their number gets its own, and a long head is
    not kept for the next answer."""
    conn = HttpConnection(HttpListener(HttpListenerConfig(), RouteTable({}), Metrics()))
    transport = FakeTransport(conn)
    conn.transport = transport  # type: ignore[assignment]
    long_value = b"x" * 2000
    answers = [
        [(b"date", b"Mon, 07 Dec 2026 18:00:00 GMT"), (b"server", b"nginx")],
        [(b"date", b"Mon, 07 Dec 2026 18:00:00 GMT"), (b"server", b"nginx")],
        [(b"date", b"Mon, 07 Dec 2026 18:00:01 GMT"), (b"server", b"nginx")],
        [(b"date", b"Mon, 07 Dec 2026 18:00:01 GMT"), (b"server", b"nginx"), (b"x-a", b"1")],
        [(b"date", b"Mon, 07 Dec 2026 18:00:01 GMT"), (b"server", b"nginx")],
        [(b"date", b"Mon, 07 Dec 2026 18:00:01 GMT"), (b"x-long", long_value)],
        [(b"date", b"Mon, 07 Dec 2026 18:00:01 GMT"), (b"x-long", long_value)],
    ]
    for pairs in answers:
        transport.written.clear()
        resp = Response(200, Headers.from_wire(list(pairs)), b"ok")
        assert write_whole(conn, Exchange("GET", "/", Headers()), resp) is True
        lines = b"".join(name + b": " + value + b"\r\n" for name, value in pairs)
        assert b"".join(transport.written) == (
            b"HTTP/1.1 200 OK\r\n" + lines + b"content-length: 2\r\n\r\nok"
        )
    assert conn.last_wire is None  # the long head was not kept
    conn.connection_lost(None)


async def test_each_request_on_a_connection_has_its_own_header_values() -> None:
    """Values are remembered by place too: a request whose values repeat, move to another
    name, follow a name too long to remember, or are too long to keep, still gets exactly its
    own headers."""
    conn = HttpConnection(HttpListener(HttpListenerConfig(), RouteTable({}), Metrics()))
    transport = FakeTransport(conn)
    conn.transport = transport  # type: ignore[assignment]
    long_name = b"X-Long-" + b"n" * 80
    heads = [
        b"X-A: 1\r\nX-B: 2\r\n",
        b"X-A: 1\r\nX-B: 2\r\n",  # the same again
        b"X-B: 1\r\nX-A: 2\r\n",  # the same values, the names swapped
        long_name + b": 1\r\nX-A: 2\r\n",  # a name too long to remember, then the same value
        b"X-B: 1\r\nX-A: 2\r\n",
        b"X-A: " + b"v" * 200 + b"\r\nX-B: 2\r\n",  # a value too long to keep
        b"X-A: " + b"v" * 200 + b"\r\nX-B: 3\r\n",
        b"X-A: 1\r\nX-B: 3\r\n",
    ]
    _each_gets_its_own(conn, heads)


async def test_each_request_on_a_connection_has_its_own_method_path_and_query() -> None:
    """A connection remembers its last method and request target: each request still gets its
    own, repeated or not, long or short, origin-form or absolute."""
    conn = HttpConnection(HttpListener(HttpListenerConfig(), RouteTable({}), Metrics()))
    transport = FakeTransport(conn)
    conn.transport = transport  # type: ignore[assignment]
    long_path = "/a/" + "p" * 300
    requests = [
        ("GET", "/a?x=1", "/a", "x=1"),
        ("GET", "/a?x=1", "/a", "x=1"),
        ("HEAD", "/a?x=2", "/a", "x=2"),
        ("HEAD", "/a#frag", "/a", ""),
        ("GET", long_path + "?q", long_path, "q"),
        ("GET", long_path + "?q", long_path, "q"),
        ("DELETE", "http://up/b?y", "/b", "y"),
        ("GET", "/a?x=1", "/a", "x=1"),
    ]
    conn.data_received(
        b"".join(f"{m} {t} HTTP/1.1\r\nhost: up\r\n\r\n".encode() for m, t, _, _ in requests)
    )
    got = [(ex.method, ex.path, ex.query) for ex in conn.queue if isinstance(ex, Exchange)]
    assert got == [(m, p, q) for m, _, p, q in requests]
    conn.connection_lost(None)
