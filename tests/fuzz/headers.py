"""Fuzz harness for header hygiene in both directions: ``data`` as the header block of a fixed
request from the app and of a fixed response from an upstream, so mutations land in headers.

What reaches an upstream and what comes back to the app carry no hop-by-hop header and no
header that ``Connection`` names; everything else is checked by the two harnesses this one
drives (:mod:`tests.fuzz.http_listener`, :mod:`tests.fuzz.upstream_response`).
"""

from __future__ import annotations

from sidecar.http1 import HOP_BY_HOP

from .common import PropertyBroken
from .http_listener import run_listener
from .upstream_response import run_upstream


def headers_target(data: bytes) -> None:
    """``data``: header lines (``name: value\\r\\n`` ...), without the blank line."""
    block = data.replace(b"\n", b"\r\n") if b"\r\n" not in data else data
    named = _connection_tokens(block)
    request = b"GET /up/x HTTP/1.1\r\nhost: up\r\n" + block + b"\r\n\r\n"
    for ex in run_listener(request).forwarded:
        leaked = {k for k, _ in ex.headers} & (HOP_BY_HOP | named)
        if leaked:
            raise PropertyBroken(f"forwarded upstream: {sorted(leaked)}")
    response = b"HTTP/1.1 200 OK\r\n" + block + b"\r\n\r\n"
    resp = run_upstream(response).response
    if resp is not None:
        leaked = {k for k, _ in resp.headers} & (HOP_BY_HOP | named)
        if leaked:
            raise PropertyBroken(f"passed back to the app: {sorted(leaked)}")


def _connection_tokens(block: bytes) -> set[str]:
    """The header names that ``Connection`` lines in ``block`` name (lower case); only the
    first head counts: after a blank line comes the next message."""
    names: set[str] = set()
    for line in block.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"connection":
            text = value.decode("latin-1")
            names |= {t.strip().lower() for t in text.split(",") if t.strip()}
    return names
