"""HTTP/1.1 wire details shared by the listener and the upstream client.

Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are removed before a message is
forwarded in either direction, together with every header the ``Connection`` header names.
Status lines are built once, at import. The request-target and ``Host`` checks here are the ones
llhttp (strict mode) leaves to its user; they are pure functions so they are tested without sockets.

Not here: parsing itself (llhttp via httptools does that) or routing (:mod:`sidecar.routing`).
"""

from __future__ import annotations

__all__ = [
    "CLOSED_REQUEST_PARSER",
    "CLOSED_RESPONSE_PARSER",
    "FRAMING",
    "HOP_BY_HOP",
    "STATUS_LINES",
    "NamesByPlace",
    "content_length_value",
    "hop_by_hop_names",
    "parse_absolute_target",
    "split_origin_target",
    "status_line",
    "valid_host",
]

import re
from http import HTTPStatus
from typing import Final, Generic, Protocol, TypeVar

import httptools

from .errors import BadRequest

#: Removed from every forwarded message. ``content-length``/``transfer-encoding`` are framing,
#: re-derived by whoever writes the message next.
HOP_BY_HOP: Final = frozenset(
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

#: Headers a writer derives itself; a response header list carrying them is not trusted for them.
FRAMING: Final = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})

_REASONS: Final = {s.value: s.phrase for s in HTTPStatus}
STATUS_LINES: Final[dict[int, bytes]] = {
    code: f"HTTP/1.1 {code} {_REASONS.get(code, '')}\r\n".encode() for code in range(100, 600)
}

#: ``Host``: an IP literal or a reg-name (RFC 3986 §3.2.2), then an optional port. No userinfo,
#: no path, no whitespace: anything else is a request that means different things to different
#: parsers, which is how Host-based routing gets tricked.
_HOST: Final = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::[0-9]{0,5})?")


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is None:
        raise ValueError(f"status {status} out of range")
    return line


#: ``hop_by_hop_names`` of one ``Connection`` value, for the few values peers really send
#: (``keep-alive``, ``close``...): computed once each, not per message. Bounded: values come
#: from the network.
_ONE_VALUE: Final[dict[str, frozenset[str]]] = {}
_ONE_VALUE_MAX: Final = 64
#: the longest value remembered: ``keep-alive``, ``close``, a few names, never a hostile 60 KB
_ONE_VALUE_BYTES: Final = 256


def hop_by_hop_names(connection_values: list[str]) -> frozenset[str]:
    """``HOP_BY_HOP`` plus the tokens of ``Connection`` header values."""
    if not connection_values:
        return HOP_BY_HOP
    if len(connection_values) == 1:
        value = connection_values[0]
        names = _ONE_VALUE.get(value)
        if names is None:
            names = _names(connection_values)
            if len(value) <= _ONE_VALUE_BYTES and len(_ONE_VALUE) < _ONE_VALUE_MAX:
                _ONE_VALUE[value] = names
        return names
    return _names(connection_values)


def _names(connection_values: list[str]) -> frozenset[str]:
    named = {t.strip().lower() for v in connection_values for t in v.split(",") if t.strip()}
    return HOP_BY_HOP | named


def content_length_value(raw: bytes) -> int:
    """``int(raw)`` for a ``Content-Length`` value llhttp accepted: digits, then perhaps
    whitespace. Read digit by digit: a call of ``int`` on bytes costs ~500 instructions, this a
    few per digit."""
    n = 0
    for i in range(len(raw)):
        digit = raw[i] - 48
        if digit < 0 or digit > 9:
            break  # the whitespace llhttp leaves after the digits
        n = n * 10 + digit
    return n


def valid_host(value: str) -> bool:
    """Whether ``value`` is a well-formed ``Host`` header value (host and optional port)."""
    return _HOST.fullmatch(value) is not None


def split_origin_target(target: str) -> tuple[str, str]:
    """``/path?query#fragment`` → ``(path, query)``; fragments are not sent (RFC 9110 §4.2.4)."""
    if "#" in target:
        target = target.partition("#")[0]
    path, _, query = target.partition("?")
    return path, query


class _ParsedUrl(Protocol):
    """``httptools.parse_url``'s answer as it is: its stub says each part is ``bytes``, but a part
    the target lacks is ``None`` (compiled code checks the declared type, and would fail)."""

    @property
    def schema(self) -> bytes | None: ...
    @property
    def host(self) -> bytes | None: ...
    @property
    def path(self) -> bytes | None: ...
    @property
    def query(self) -> bytes | None: ...
    @property
    def userinfo(self) -> bytes | None: ...


def parse_absolute_target(target: bytes) -> tuple[str, str, str]:
    """``http://host[:port]/path?query`` → ``(host, path, query)``, or :class:`BadRequest`.

    The authority replaces ``Host`` (RFC 9112 §3.2.2). Only ``http``/``https`` are accepted and
    credentials in the target are refused: the sidecar is not a forward proxy for other schemes.
    """
    try:
        url: _ParsedUrl = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        raise BadRequest("malformed request target") from None
    scheme = (url.schema or b"").lower()
    if scheme not in (b"http", b"https"):
        raise BadRequest("only http:// request targets are accepted")
    if url.userinfo:
        raise BadRequest("credentials in the request target are refused")
    host = (url.host or b"").decode("latin-1")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal, written as in Host
    if not host or not valid_host(host):
        raise BadRequest("malformed host in the request target")
    path = (url.path or b"/").decode("latin-1")
    query = (url.query or b"").decode("latin-1")
    return host, path, query


class _NoCallbacks:
    """A parser protocol with no callbacks: what a closed connection's parser points at."""


#: Swapped in for a closed connection's parser (app side, and upstream side). A parser holds its
#: protocol (the connection) and the connection its parser: left alone, that cycle keeps every
#: closed connection, its buffers and exchanges until the cyclic collector's oldest generation
#: runs, which after a burst of thousands of connections can be never (RSS grew 89 -> 134 MB
#: over nine bursts of 5000 idle connections); broken, a connection is freed the moment it
#: closes (flat at 112 MB; bench/connection_bursts.py).
CLOSED_REQUEST_PARSER: Final = httptools.HttpRequestParser(_NoCallbacks())
CLOSED_RESPONSE_PARSER: Final = httptools.HttpResponseParser(_NoCallbacks())


#: how a header name is kept once read: ``str`` (requests) or lower-case ``bytes`` (responses)
N = TypeVar("N")
#: the longest name remembered by place: real names are short, a hostile one is not kept
NAME_MAX_BYTES: Final = 64


class NamesByPlace(Generic[N]):
    """The header names of a connection's last message, by place, as received and as read.

    A peer sends the same names in the same order in each message: the name the last message
    had at a place is compared with the one received there, instead of hashed and looked up.
    Bounded: as many places as a message may have headers, names of at most
    :data:`NAME_MAX_BYTES`.
    """

    __slots__ = ("read", "seen")

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.read: list[N] = []

    def get(self, at: int, name: bytes) -> N | None:
        """The name read at place ``at`` if the last message had ``name`` there."""
        seen = self.seen
        if at < len(seen) and seen[at] == name:
            return self.read[at]
        return None

    def put(self, at: int, name: bytes, read: N) -> None:
        """Remember ``name`` read as ``read`` at place ``at`` (for the next message)."""
        if len(name) > NAME_MAX_BYTES:
            return
        seen = self.seen
        if at < len(seen):
            seen[at] = name
            self.read[at] = read
        elif at == len(seen):
            seen.append(name)
            self.read.append(read)
