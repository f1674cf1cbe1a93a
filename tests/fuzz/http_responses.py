"""Reading back what the listener wrote to the app, as a strict HTTP/1.1 client would: each
response's status, ``x-sidecar-error`` code and whether the stub upstream answered it.

A response to HEAD carries a length but no body, so the reader needs the methods of the
requests answered, in order; interim ``100 Continue`` answers none. Anything that does not
frame as a response raises :class:`~tests.fuzz.common.PropertyBroken`. Not here: the checks on
the sequence (:mod:`tests.fuzz.http_listener`).
"""

from __future__ import annotations

import re
from collections import deque

from .common import PropertyBroken

_STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*")
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?([^\r\n]*)")

Read = tuple[int, str | None, bool]


def split_responses(out: bytes, methods: list[str]) -> list[Read]:
    """The responses in ``out``; ``methods``: those of the requests the upstream stub got, in
    order (a refusal answers a request that never got that far)."""
    pending = deque(methods)
    items: list[Read] = []
    at = 0
    while at < len(out):
        end = out.find(b"\r\n\r\n", at)
        if end < 0:
            raise PropertyBroken(f"a response head without its end: {out[at : at + 200]!r}")
        lines = out[at:end].split(b"\r\n")
        status_line = _STATUS.fullmatch(lines[0])
        if status_line is None:
            raise PropertyBroken(f"not a status line: {lines[0][:100]!r}")
        status = int(status_line.group(1))
        fields: dict[bytes, bytes] = {}
        for line in lines[1:]:
            field = _HEADER.fullmatch(line)
            if field is None:
                raise PropertyBroken(f"not a header line: {line[:100]!r}")
            fields[field.group(1).lower()] = field.group(2)
        at = end + 4
        if status == 100:
            continue  # the answer to Expect: 100-continue, before the real one
        # every request dispatched gets one answer, in order (the stub's, or an error such as
        # no_route); a refusal of a request never dispatched can only come after them
        method = pending.popleft() if pending else None
        handled = fields.get(b"x-fuzz") == b"handled"
        if handled and method is None:
            raise PropertyBroken("more answers from the upstream stub than requests it got")
        code = fields.get(b"x-sidecar-error")
        items.append((status, code.decode() if code is not None else None, handled))
        if method == "HEAD" or status in (204, 304):
            continue
        at = _skip_body(out, at, fields)
    return items


def _skip_body(out: bytes, at: int, fields: dict[bytes, bytes]) -> int:
    if b"content-length" in fields:
        if b"transfer-encoding" in fields:
            raise PropertyBroken("a response with both content-length and transfer-encoding")
        length = int(fields[b"content-length"])
        if at + length > len(out):
            raise PropertyBroken("a response shorter than its content-length")
        return at + length
    if fields.get(b"transfer-encoding") == b"chunked":
        while True:
            end = out.find(b"\r\n", at)
            if end < 0:
                raise PropertyBroken("a chunked body cut in a chunk size")
            size = int(out[at:end], 16)
            at = end + 2 + size + 2
            if at > len(out) or out[at - 2 : at] != b"\r\n":
                raise PropertyBroken("a chunked body cut in a chunk")
            if size == 0:
                return at
    if fields.get(b"connection") != b"close":
        raise PropertyBroken("a body delimited by the close on a connection kept open")
    return len(out)
