"""The seed corpus: hand-written inputs that reach each target's interesting states (valid
traffic, each refusal, each limit), written to ``tests/fuzz/corpus/<target>/seed-*`` by
``python -m tests.fuzz.seeds``. Crashes found later sit beside them as ``crash-*`` files.

A seed's first byte is the target's control byte where it has one (how the bytes are cut,
limits): ``0`` means one read and the default limits. Not here: the replay
(:mod:`tests.fuzz.test_replay`).
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import h2.config
import h2.connection
from hyperframe.frame import GoAwayFrame, PingFrame, SettingsFrame, WindowUpdateFrame

from .grpc_h2 import PREFACE

CORPUS = Path(__file__).parent / "corpus"
GET = b"GET /up/a HTTP/1.1\r\nHost: up\r\n\r\n"


def http_request() -> dict[str, bytes]:
    one = b"\x00"
    return {
        "get": one + GET,
        "get-bytewise": b"\x01" + GET,
        "pipelined": b"\x02" + GET * 3 + b"HEAD /up/h HTTP/1.1\r\nHost: up\r\n\r\n",
        "post-length": one + b"POST /up/p HTTP/1.1\r\nHost: up\r\nContent-Length: 5\r\n\r\nhello",
        "post-chunked-trailer": one
        + b"POST /up/p HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\n" + GET,
        "expect-continue": b"\x05POST /up/p HTTP/1.1\r\nHost: up\r\nExpect: 100-continue\r\n"
        b"Content-Length: 3\r\n\r\nabc",
        "http10-keepalive": one + b"GET /up/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + GET,
        "absolute-form": one + b"GET http://up:80/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        "connection-close": one
        + b"GET /up/a HTTP/1.1\r\nHost: up\r\nConnection: close\r\n\r\n"
        + GET,
        "connection-names": one
        + b"GET /up/a HTTP/1.1\r\nHost: up\r\nConnection: x-secret, keep-alive\r\n"
        b"x-secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nx-kept: 2\r\n\r\n",
        "upgrade": one + b"GET /up/ws HTTP/1.1\r\nHost: up\r\nConnection: upgrade\r\n"
        b"Upgrade: websocket\r\n\r\n" + GET,
        "long-header": one
        + b"GET /up/a HTTP/1.1\r\nHost: up\r\nx-long: "
        + b"a" * 3000
        + b"\r\n\r\n",
        "many-headers": one + b"GET /up/a HTTP/1.1\r\nHost: up\r\n" + b"x-h: 1\r\n" * 20 + b"\r\n",
        "long-uri": one + b"GET /up/" + b"u" * 600 + b" HTTP/1.1\r\nHost: up\r\n\r\n",
        "body-over-limit": one + b"POST /up/p HTTP/1.1\r\nHost: up\r\nContent-Length: 5000\r\n\r\n",
        "chunked-over-limit": one
        + b"POST /up/p HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"400\r\n"
        + b"b" * 1024
        + b"\r\n" * 1
        + (b"1000\r\n" + b"c" * 4096 + b"\r\n0\r\n\r\n"),
        "two-hosts": one + b"GET /up/a HTTP/1.1\r\nHost: up\r\nHost: evil\r\n\r\n",
        "bad-host": one + b"GET /up/a HTTP/1.1\r\nHost: up@evil\r\n\r\n",
        "no-host": one + b"GET /up/a HTTP/1.1\r\n\r\n",
        "te-and-cl": one + b"POST /up/p HTTP/1.1\r\nHost: up\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "te-gzip": one + b"POST /up/p HTTP/1.1\r\nHost: up\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n",
        "te-http10": one + b"POST /up/p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "connect": one + b"CONNECT up:443 HTTP/1.1\r\nHost: up\r\n\r\n",
        "asterisk": one + b"OPTIONS * HTTP/1.1\r\nHost: up\r\n\r\n",
        "dot-segments": one + b"GET /up/a/../../b/./c//d HTTP/1.1\r\nHost: up\r\n\r\n",
        "encoded-slash": one + b"GET /up/a%2Fb HTTP/1.1\r\nHost: up\r\n\r\n",
        "encoded-nul": one + b"GET /up/a%00 HTTP/1.1\r\nHost: up\r\n\r\n",
        "no-route": one + b"GET /nope HTTP/1.1\r\nHost: nope\r\n\r\n",
        "bad-expect": one + b"GET /up/a HTTP/1.1\r\nHost: up\r\nExpect: magic\r\n\r\n",
        "obs-fold": one + b"GET /up/a HTTP/1.1\r\nHost: up\r\nx-a: 1\r\n  folded\r\n\r\n",
        "http2-preface": one + PREFACE,
        "garbage-after-valid": b"\x03" + GET + b"\x00\x01\x02 garbage\r\n\r\n",
        "half-head": b"\x41GET /up/a HTTP/1.1\r\nHo",
        "half-body-unlimited": b"\x80POST /up/p HTTP/1.1\r\nHost: up\r\n"
        b"Content-Length: 100\r\n\r\nab",
    }


def upstream_response() -> dict[str, bytes]:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    return {
        "length": b"\x00" + ok,
        "bytewise": b"\x01" + ok,
        "chunked": b"\x00HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n3;ext=1\r\nabc\r\n0\r\nx-t: 1\r\n\r\n",
        "close-delimited": b"\x00HTTP/1.1 200 OK\r\n\r\nuntil the close",
        "close-delimited-reset": b"\x40HTTP/1.1 200 OK\r\n\r\ncut by a reset",
        "interim": b"\x00HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nlink: x\r\n\r\n" + ok,
        "no-content": b"\x00HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n",
        "not-modified": b"\x00HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
        "head": b"\x20HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",
        "short-body": b"\x00HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
        "two-responses": b"\x00" + ok + ok,
        "switching": b"\x00HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
        "te-gzip": b"\x00HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
        "hop-by-hop": b"\x00HTTP/1.1 200 OK\r\nconnection: x-secret, close\r\nx-secret: 1\r\n"
        b"keep-alive: timeout=5, max=10\r\nproxy-authenticate: x\r\ncontent-length: 0\r\n\r\n",
        "http10": b"\x00HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
        "http2": b"\x00HTTP/2.0 200 OK\r\n\r\n",
        "status-999": b"\x00HTTP/1.1 999 Odd\r\ncontent-length: 0\r\n\r\n",
        "long-header": b"\x02HTTP/1.1 200 OK\r\nx-long: " + b"a" * 5000 + b"\r\n\r\n",
        "streamed": b"\x86HTTP/1.1 200 OK\r\ncontent-length: 300\r\n\r\n" + b"s" * 300,
        "garbage": b"\x00not http at all",
        "empty": b"\x00",
    }


def _grpc_call(
    path: bytes = b"/fuzz.Echo/Unary",
    messages: tuple[bytes, ...] = (b"hi",),
    data: tuple[bytes, ...] | None = None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    end: bool = True,
    reset: bool = False,
    streams: int = 1,
) -> bytes:
    """A gRPC call as an h2 client writes it, after the preface (the target adds that);
    ``data``: DATA frame payloads as given, instead of ``messages`` framed."""
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    out = client.data_to_send()[len(PREFACE) :] + SettingsFrame(0, flags=["ACK"]).serialize()
    for n in range(streams):
        sid = 1 + 2 * n
        head = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path),
            (b":authority", b"fuzz"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            *headers,
        ]
        client.send_headers(sid, head, end_stream=not messages and end)
        payloads = data or [b"\0" + len(m).to_bytes(4, "big") + m for m in messages]
        for i, payload in enumerate(payloads):
            client.send_data(sid, payload, end_stream=end and i == len(payloads) - 1)
        if reset:
            client.reset_stream(sid)
    return out + client.data_to_send()


def grpc_h2() -> dict[str, bytes]:
    one = b"\x00"
    return {
        "unary": one + _grpc_call(),
        "unary-split": b"\x05" + _grpc_call(),
        "bidi": one + _grpc_call(b"/fuzz.Echo/Bidi", (b"a", b"bb", b"ccc")),
        "no-message": one + _grpc_call(messages=()),
        "open-stream": one + _grpc_call(end=False),
        "reset": one + _grpc_call(end=False, reset=True),
        "many-resets": one + _grpc_call(end=False, reset=True, streams=20),
        "many-streams": one + _grpc_call(b"/fuzz.Echo/Bidi", end=False, streams=12),
        "gzip": one + _grpc_call(headers=((b"grpc-encoding", b"gzip"),)),
        "timeout-metadata": one
        + _grpc_call(headers=((b"grpc-timeout", b"100m"), (b"x-bin", b"AAE"), (b"x-m", b"v"))),
        "wrong-content-type": one + _grpc_call().replace(b"application/grpc", b"application/json"),
        "no-route": one + _grpc_call(b"/other.Svc/M"),
        "not-a-method": one + _grpc_call(b"/"),
        "message-too-big": one + _grpc_call(messages=(b"x" * 2000,)),
        "compressed-flag": one + _grpc_call(data=(b"\x01\x00\x00\x00\x01z",)),
        "truncated-message": one + _grpc_call(data=(b"\x00\x00\x00\x00\x09abc",)),
        "split-prefix": one + _grpc_call(data=(b"\x00\x00", b"\x00\x00\x02", b"ab")),
        "ping-window-goaway": one
        + _grpc_call(end=False)
        + PingFrame(0, opaque_data=b"12345678").serialize()
        + WindowUpdateFrame(1, window_increment=1000).serialize()
        + GoAwayFrame(0, last_stream_id=1).serialize(),
        "settings-only": one + SettingsFrame(0).serialize(),
        "no-preface": b"\x80" + b"GET / HTTP/1.1\r\n\r\n",
    }


def routing() -> dict[str, bytes]:
    paths = [
        b"/up/a/b",
        b"/up/a/../../../etc/passwd",
        b"/up//a///b/./c/",
        b"/up/%61%2e%2E/x",
        b"/up/a%2fb",
        b"/up/a%5Cb",
        b"/up/a\\b",
        b"/up/..;/x",
        b"/up/%2e%2e;x/y",
        b"/up/%c3%a9?q=%2F#frag",
        b"/up/a%00b",
        b"/api/v2/x",
        b"/rooted/y",
        b"/Pay/x",
        b"/",
        b"//",
        b"/.",
        b"/..",
        b"http://up/a/../b",
        b"https://h.example:8443/x?y",
        b"http://u:p@up/x",
        b"http://[::1]:80/x",
        b"ftp://up/x",
        b"up:80",
    ]
    return {f"{i:02d}": bytes([i % 8]) + p for i, p in enumerate(paths)}


def headers() -> dict[str, bytes]:
    return {
        "plain": b"x-a: 1\r\nx-b: 2",
        "connection-named": b"connection: x-secret, Keep-Alive\r\nx-secret: s\r\nkeep-alive: 1",
        "connection-case": b"Connection: X-Secret\r\nX-SECRET: s\r\nx-kept: k",
        "all-hop-by-hop": b"te: trailers\r\ntrailer: x\r\nproxy-connection: keep-alive\r\n"
        b"proxy-authorization: basic x\r\nproxy-authenticate: x\r\nupgrade: h2c",
        "two-connections": b"connection: a\r\nconnection: b, c\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4",
        "empty-values": b"connection: ,, ,\r\nx-empty:",
        "latin1": b"x-l: caf\xe9",
    }


def _documented_example() -> bytes:
    """The complete example of docs/configuration.md: every key the sidecar knows."""
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    return doc.split("```yaml\n", 1)[1].split("```", 1)[0].encode()


def config() -> dict[str, bytes]:
    default = resources.files("sidecar").joinpath("default.yaml").read_bytes()
    return {
        "default": default,
        "documented-example": _documented_example(),
        "upstreams": b"upstreams:\n  pay:\n    url: http://127.0.0.1:9000\n    timeout: 2s\n"
        b"    retry: {attempts: 3, on: [503, connect-failure]}\n"
        b"    request_headers: {x-a: '${FUZZ_SET}'}\n"
        b"routes:\n  - match: {path_prefix: /v2, headers: {x-c: '1'}}\n    upstream: pay\n"
        b"    prefix_rewrite: /\n",
        "env-default": b"http: {address: '127.0.0.1:${FUZZ_PORT:-15001}'}\n"
        b"upstreams: {a: {url: 'http://127.0.0.1:1/${FUZZ_UNSET:-x}'}}\n",
        "env-missing": b"upstreams: {a: {url: 'http://${FUZZ_UNSET}'}}\n",
        "duplicate-key": b"upstreams: {}\nupstreams: {}\n",
        "anchors": b"base: &b {timeout: 1s}\nupstreams:\n  a: {<<: *b, url: 'http://127.0.0.1:1'}\n",
        "auth-secret": b"upstreams:\n  a:\n    url: http://127.0.0.1:1\n    auth:\n"
        b"      type: api_key\n      header: x-key\n      key: {env: FUZZ_SET}\n",
        "wrong-types": b"http: [1, 2]\nupstreams: {a: 3}\ngrpc: {max_concurrent_streams: -1}\n",
        "tabs-and-bom": b"\xef\xbb\xbfupstreams:\n\ta: 1\n",
        "not-utf8": b"upstreams: {a: {url: '\xff'}}\n",
        "scalar": b"just a string\n",
        "bools": b"grpc: {enabled: yes}\nplugins: {disabled: [on, off]}\n",
    }


SEEDS = {
    "http_request": http_request,
    "upstream_response": upstream_response,
    "grpc_h2": grpc_h2,
    "routing": routing,
    "headers": headers,
    "config": config,
}


def write(corpus: Path = CORPUS) -> int:
    """(Re)write every seed file; crash files are left alone. Returns how many were written."""
    count = 0
    for target, make in SEEDS.items():
        folder = corpus / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in make().items():
            (folder / f"seed-{name}").write_bytes(data)
            count += 1
    return count


if __name__ == "__main__":
    print(f"{write()} seeds written under {CORPUS}", file=sys.stderr)
