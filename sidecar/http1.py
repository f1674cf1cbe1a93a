"""HTTP/1.1 wire details shared by the listener and the upstream client.

Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are removed before a message is
forwarded in either direction, together with every header the ``Connection`` header names.
Status lines are built once, at import.
"""

from __future__ import annotations

__all__ = ["HOP_BY_HOP", "STATUS_LINES", "hop_by_hop_names", "status_line"]

from http import HTTPStatus

#: Removed from every forwarded message. ``content-length``/``transfer-encoding`` are framing,
#: re-derived by whoever writes the message next.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "content-length",
        "expect",
    }
)

_REASONS = {s.value: s.phrase for s in HTTPStatus}
STATUS_LINES: dict[int, bytes] = {
    code: f"HTTP/1.1 {code} {_REASONS.get(code, '')}\r\n".encode() for code in range(100, 600)
}


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is None:
        raise ValueError(f"status {status} out of range")
    return line


def hop_by_hop_names(connection_values: list[str]) -> frozenset[str]:
    """``HOP_BY_HOP`` plus the tokens of ``Connection`` header values."""
    if not connection_values:
        return HOP_BY_HOP
    named = {t.strip().lower() for v in connection_values for t in v.split(",") if t.strip()}
    return HOP_BY_HOP | named
