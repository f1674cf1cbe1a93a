"""Hypothesis strategies for the property tests: HTTP/1.1 requests and responses, HTTP/2
frames, config data. They generate well-formed traffic with hostile parts mixed in (hop-by-hop
headers, odd framing, dot segments and escapes), so shrinking ends on a readable input.
"""

from __future__ import annotations

from hypothesis import strategies as st

_TOKEN = "abcdefghijklmnopqrstuvwxyz0123456789-"
#: header names the listener and the upstream client treat specially, and ordinary ones
HEADER_NAMES = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "expect",
    "x-secret",
    "x-a",
    "x-b",
    "accept",
    "x-forwarded-for",
]
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=20,
).map(str.strip)
header_names = st.sampled_from(HEADER_NAMES) | st.text(_TOKEN, min_size=1, max_size=8)
headers = st.lists(st.tuples(header_names, header_values), max_size=6)
path_pieces = st.sampled_from(
    ["/", "a", "b", ".", "..", "%2e", "%2E", "%25", "%41", "%c3%a9", "%", "%%", ";", "~", "x-y"]
)
paths = st.lists(path_pieces, max_size=10).map(lambda p: "/up/" + "".join(p))


@st.composite
def requests(draw: st.DrawFn, keep_alive: bool = False) -> bytes:
    """One HTTP/1.x request to the ``up`` upstream: any method, a path with escapes and dot
    segments, hostile headers, a body framed by length, chunks, or not at all.
    ``keep_alive``: never the last request on its connection (HTTP/1.1, no ``close``)."""
    method = draw(st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH"]))
    version = "1.1" if keep_alive else draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    query = draw(st.sampled_from(["", "?x=1", "?a=%2F&b=..", "?"]))
    lines = [f"{method} {draw(paths)}{query} HTTP/{version}", "host: up"]
    for name, value in draw(headers):
        if name in ("connection", "expect") and draw(st.booleans()):
            value = draw(st.sampled_from(["close", "keep-alive", "x-secret, te", "100-continue"]))
        if keep_alive and name == "connection" and "close" in value.lower():
            continue
        lines.append(f"{name}: {value}")
    body = draw(st.binary(max_size=64))
    framing = draw(st.sampled_from(["length", "chunked", "none"]))
    if framing == "length" or (framing == "chunked" and version == "1.0"):
        lines.append(f"content-length: {len(body)}")
        payload = body
    elif framing == "chunked":
        lines.append("transfer-encoding: chunked")
        cut = draw(st.integers(0, len(body)))
        parts = [p for p in (body[:cut], body[cut:]) if p]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    else:
        payload = b""
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


#: request heads the listener must refuse, each on its own rule
BAD_HEADS = [
    b"GET /up/a HTTP/1.1\r\nhost: up\r\nhost: other\r\n\r\n",
    b"GET /up/a HTTP/1.1\r\nhost: up@evil\r\n\r\n",
    b"GET /up/a HTTP/1.1\r\n\r\n",
    b"POST /up/a HTTP/1.1\r\nhost: up\r\ncontent-length: 999999\r\n\r\n",
    b"CONNECT up:443 HTTP/1.1\r\nhost: up\r\n\r\n",
    b"POST /up/a HTTP/1.1\r\nhost: up\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
    b"POST /up/a HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /up/a HTTP/1.1\r\nhost: up\r\nexpect: magic\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nhost: up\r\n\r\n",
    b"GET ftp://up/a HTTP/1.1\r\nhost: up\r\n\r\n",
    b"GET /up/a HTTP/1.1\r\nhost: up\r\nx-long: " + b"l" * 3000 + b"\r\n\r\n",
    b"GET /up/" + b"u" * 600 + b" HTTP/1.1\r\nhost: up\r\n\r\n",
    b"GET /up/a HTTP/1.1\r\nhost: up\r\n" + b"x-h: 1\r\n" * 17 + b"\r\n",
    b"GET /up/a HTTP/1.1\r\nhost: up\r\nbad header\r\n\r\n",
]


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    """One upstream response: any status (interim ones too), hostile headers, a body framed
    by length, chunks or the close, sometimes lying about its length, sometimes followed by
    more bytes."""
    status = draw(st.sampled_from([100, 103, 200, 200, 204, 206, 301, 304, 404, 503, 599, 600]))
    version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    lines = [f"HTTP/{version} {status} Reason"]
    lines += [f"{name}: {value}" for name, value in draw(headers)]
    body = draw(st.binary(max_size=64))
    framing = draw(st.sampled_from(["length", "chunked", "close", "lie"]))
    if framing in ("length", "lie"):
        lies = draw(st.integers(-3, 3)) if framing == "lie" else 0
        lines.append(f"content-length: {max(0, len(body) + lies)}")
        payload = body
    elif framing == "chunked":
        lines.append("transfer-encoding: chunked")
        payload = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        payload = body
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    after = draw(st.sampled_from([b"", b"", b"HTTP/1.1 200 OK\r\n\r\n", b"x"]))
    return head + payload + after
