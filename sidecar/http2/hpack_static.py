"""The HPACK static table (RFC 7541 Appendix A) and the two lookups the encoder makes in it.

What it is: the 61 fixed entries, indexed from 1, and dicts from a name (and a value) to the
lowest index holding it. What it is not: the dynamic table, which each encoder and decoder keeps.
"""

from __future__ import annotations

__all__ = ["STATIC_BY_NAME", "STATIC_BY_NAME_VALUE", "STATIC_TABLE", "STATIC_TABLE_LENGTH"]

from typing import Final

#: Entry ``i`` (1 to 61) is ``STATIC_TABLE[i - 1]``.
STATIC_TABLE: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
)

STATIC_TABLE_LENGTH: Final = 61


def _by_name() -> dict[bytes, int]:
    found: dict[bytes, int] = {}
    for index, (name, _value) in enumerate(STATIC_TABLE, 1):
        found.setdefault(name, index)
    return found


def _by_name_value() -> dict[bytes, dict[bytes, int]]:
    found: dict[bytes, dict[bytes, int]] = {}
    for index, (name, value) in enumerate(STATIC_TABLE, 1):
        found.setdefault(name, {}).setdefault(value, index)
    return found


#: The lowest index of each name.
STATIC_BY_NAME: Final[dict[bytes, int]] = _by_name()
#: name -> value -> index: nested rather than keyed by a (name, value) tuple, so a lookup
#: allocates nothing.
STATIC_BY_NAME_VALUE: Final[dict[bytes, dict[bytes, int]]] = _by_name_value()
