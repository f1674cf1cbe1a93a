"""The protocol-neutral call in flight: :class:`Exchange`, :class:`Response` and :class:`Headers`.

An ``Exchange`` is what every filter and adapter sees, whichever listener accepted the call
(HTTP/1.1 now, gRPC and the inbound mTLS listener later). It is built once per call by the
listener and carries no protocol objects: only method, path, headers, body, deadline, peer and a
typed stash where filters leave data for each other (``exchange.stash[KEY]``).

Bodies are ``bytes`` when the whole body is already in memory (the common small case, sent in one
write) or an ``AsyncIterator[bytes]`` that streams with back-pressure. Framing (Content-Length,
Transfer-Encoding) is not a header here: ``length`` says how long a body is when known, and each
listener frames it for its own protocol.

Header names are lower-case ``str``; values are ``str`` (latin-1, as HTTP/1.1 defines octets).
A response's headers may hold the upstream's bytes until first read (:meth:`Headers.from_wire`).
"""

from __future__ import annotations

__all__ = [
    "Body",
    "Exchange",
    "Headers",
    "Response",
    "StashKey",
    "close_body",
    "completed",
    "discard",
    "read_body",
]

import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar, cast

from .errors import BodyTooLarge
from .waiter import Wake

T = TypeVar("T")

log = logging.getLogger("sidecar.exchange")

#: A body: all of it (``bytes``) or a stream of chunks.
Body = bytes | AsyncIterator[bytes]


class Headers:
    """An ordered multi-map of lower-case header names to values.

    Backed by a plain list of ``(name, value)`` pairs so a listener can build it without copying;
    lookups are linear, which beats hashing for the dozen headers a call carries.

    A response from an upstream connection arrives in wire form (:meth:`from_wire`): the bytes
    pairs as parsed. Most calls never read a response header, so they become ``str`` pairs only
    on first use of any method, and the app-facing writer copies the bytes as they came
    (:meth:`unread_wire`). Readers cannot tell the two apart: every method materialises first.
    """

    __slots__ = ("_items", "_wire")

    def __init__(self, items: Iterable[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = list(items) if items is not None else []
        #: the pairs as received (lower-case names), until first read as ``str``; then ``None``.
        self._wire: list[tuple[bytes, bytes]] | None = None

    @classmethod
    def wrap(cls, items: list[tuple[str, str]]) -> Headers:
        """Adopt ``items`` (already lower-case names) without copying."""
        # not ``cls.__new__(cls)``: mypyc cannot compile a call to a native class's __new__;
        # and not ``cls()``, a generic call where ``Headers()`` is a direct one (nothing
        # subclasses it: interpreted code cannot subclass a compiled class)
        h = Headers()
        h._items = items
        return h

    @classmethod
    def from_wire(cls, pairs: list[tuple[bytes, bytes]]) -> Headers:
        """Adopt ``pairs`` as received (names already lower-case, octets as sent), decoded as
        latin-1 only when first read. ``pairs`` must not hold framing headers
        (``Content-Length``, ``Transfer-Encoding``, ``Connection``, ``Keep-Alive``): the writer
        copies them unread."""
        h = Headers()  # see wrap()
        h._wire = pairs
        return h

    def unread_wire(self) -> list[tuple[bytes, bytes]] | None:
        """The wire pairs when nobody has read or changed these headers since they came, else
        ``None`` (they are ``str`` pairs now). For writers only: reading it does not
        materialise, and the list must not be changed."""
        return self._wire

    def _pairs(self) -> list[tuple[str, str]]:
        """The ``str`` pairs, decoded from the wire form once, on first use."""
        wire = self._wire
        if wire is not None:
            self._items = [
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in wire
            ]
            self._wire = None
        return self._items

    def get(self, name: str, default: str | None = None) -> str | None:
        for k, v in self._pairs():
            if k == name:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self._pairs() if k == name]

    def add(self, name: str, value: str) -> None:
        self._pairs().append((name.lower(), value))

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with one ``value``."""
        name = name.lower()
        # a new list (one iterating the old one is not disturbed), copied by reference: the
        # pairs are rebuilt only when one is dropped
        items = list(self._pairs())
        at = len(items) - 1
        while at >= 0:
            if items[at][0] == name:
                del items[at]
            at -= 1
        items.append((name, value))
        self._items = items

    def remove(self, name: str) -> None:
        name = name.lower()
        self._items = [(k, v) for k, v in self._pairs() if k != name]

    def __contains__(self, name: object) -> bool:
        return any(k == name for k, _ in self._pairs())

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._pairs())

    def __len__(self) -> int:
        return len(self._pairs())

    def items(self) -> list[tuple[str, str]]:
        """The underlying pairs (mutable; listeners and adapters use it to avoid copies)."""
        return self._pairs()

    def copy(self) -> Headers:
        return Headers.wrap(list(self._pairs()))

    def __repr__(self) -> str:
        return f"Headers({self._pairs()!r})"


class StashKey(Generic[T]):
    """A typed key into :attr:`Exchange.stash`, e.g. ``RETRY_COUNT: StashKey[int]``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"StashKey({self.name!r})"


class Stash:
    """Per-call typed storage shared by filters."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[StashKey[Any], Any] = {}

    def __getitem__(self, key: StashKey[T]) -> T:
        return cast(T, self._data[key])

    def __setitem__(self, key: StashKey[T], value: T) -> None:
        self._data[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: StashKey[T], default: T | None = None) -> T | None:
        return cast("T | None", self._data.get(key, default))


class Exchange:
    """One call in flight, as filters and adapters see it."""

    __slots__ = (
        "_admitted",
        "_deadline_entry",
        "_stash",
        "_wake",
        "body",
        "body_length",
        "client",
        "deadline",
        "headers",
        "host",
        "http_version",
        "keep_alive",
        "listener",
        "method",
        "path",
        "peer_identity",
        "query",
        "route",
        "start",
        "upstream",
    )

    def __init__(
        self,
        method: str,
        path: str,
        headers: Headers,
        *,
        query: str = "",
        body: Body = b"",
        body_length: int | None = 0,
        client: str = "",
        listener: str = "http",
        http_version: str = "1.1",
        start: float = 0.0,
    ) -> None:
        self.method = method
        #: normalised path as it will be sent upstream (route prefix already stripped).
        self.path = path
        #: raw query string without the ``?`` (empty when none).
        self.query = query
        self.headers = headers
        self.body = body
        #: body length when known (Content-Length), ``None`` for a stream of unknown length.
        self.body_length = body_length
        #: the app's address, ``"ip:port"``.
        self.client = client
        self.listener = listener
        self.http_version = http_version
        #: the authority the app addressed (``Host`` or the absolute-form URI's), if any.
        self.host: str | None = None
        #: whether the app's connection may be reused after this call (HTTP/1.x).
        self.keep_alive = True
        #: absolute loop time by which the call must finish, set by the timeout filter.
        self.deadline: float | None = None
        #: verified peer identity (SPIFFE ID) on the inbound listener, else ``None``.
        self.peer_identity: str | None = None
        #: upstream and route names, set by the router.
        self.upstream = ""
        self.route = ""
        #: loop time when the request head was complete.
        self.start = start
        self._stash: Stash | None = None
        # the built-in timeout's and circuit breaker's state for this call while it is inside
        # them (sidecar.filters.timeout, sidecar.filters.circuit_breaker): kept here rather
        # than in a dict keyed by the call, which cost every call a hash, an insert and a delete
        self._deadline_entry: object = None
        self._admitted = -1
        #: the wake-up of the task that runs this call, if its front keeps one (the HTTP/1.1
        #: worker: sidecar.waiter), for the upstream connection that answers it
        self._wake: Wake | None = None

    @property
    def stash(self) -> Stash:
        """Typed per-call storage, created on first use (most calls never need it)."""
        s = self._stash
        if s is None:
            s = self._stash = Stash()
        return s

    def peek(self, key: StashKey[T]) -> T | None:
        """``stash.get(key)`` without creating the stash: for readers on every call."""
        s = self._stash
        return None if s is None else s.get(key)

    @property
    def target(self) -> str:
        """Path and query as sent on the request line."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def __repr__(self) -> str:
        return f"<Exchange {self.method} {self.target} upstream={self.upstream!r}>"


class Response:
    """What a handler returns: status, headers and a body (bytes or stream)."""

    __slots__ = ("body", "close", "headers", "length", "on_complete", "status", "trailers")

    def __init__(
        self,
        status: int,
        headers: Headers | None = None,
        body: Body = b"",
        length: int | None = -1,
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else Headers()
        self.body = body
        #: body length; ``-1`` means "len(body)" for bytes bodies, ``None`` unknown (stream).
        #: For HEAD and 304 responses it is the length the GET would have had.
        self.length: int | None = len(body) if length == -1 and isinstance(body, bytes) else length
        #: callbacks ``(ok, body_bytes_sent)`` the listener runs once the body was fully written
        #: (``ok``) or abandoned; the access log uses it to report bytes and the true end.
        self.on_complete: list[Callable[[bool, int], None]] | None = None
        #: close the app's connection after this response (malformed input, draining).
        self.close = False
        #: trailing fields, known once the body was read to its end (gRPC: ``grpc-status``,
        #: ``grpc-message`` and the trailing metadata, see :mod:`sidecar.grpc.wire`); ``None``
        #: for a response without trailers.
        self.trailers: Headers | None = None

    def __repr__(self) -> str:
        return f"<Response {self.status} length={self.length}>"


async def read_body(exchange: Exchange, limit: int) -> bytes:
    """Buffer the whole request body (at most ``limit`` bytes) and make it replayable.

    For filters that must see the body (signing, retry replay). Raises :class:`BodyTooLarge`
    past ``limit``; after it returns, ``exchange.body`` is ``bytes``.
    """
    body = exchange.body
    if isinstance(body, bytes):
        if len(body) > limit:
            raise BodyTooLarge(f"request body over {limit} bytes")
        return body
    parts: list[bytes] = []
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body over {limit} bytes")
        parts.append(chunk)
    data = b"".join(parts)
    exchange.body = data
    exchange.body_length = len(data)
    return data


async def discard(response: Response) -> None:
    """Give up a response that will not reach the app (a retry, a renewed credential): close a
    streaming body, so its connection is not reused mid-body, and tell whoever waits for its end
    (``on_complete``) that it was abandoned."""
    body = response.body
    if not isinstance(body, bytes):
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()
    callbacks, response.on_complete = response.on_complete, None
    if callbacks:
        for done in callbacks:
            done(False, 0)


async def close_body(response: Response) -> None:
    """Close a streaming body a listener will not write to its end (its upstream call or
    connection is given up). Best effort: the body's owner logs its own errors."""
    body = response.body
    if not isinstance(body, bytes):
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # noqa: S110 - best effort, see above
                pass


def completed(response: Response, ok: bool, sent: int) -> None:
    """Tell the response's ``on_complete`` callbacks how it ended (listeners call it once the
    body was written, ``ok``, or abandoned); a failing callback is logged, the rest still run."""
    callbacks = response.on_complete
    if callbacks:
        for done in callbacks:
            try:
                done(ok, sent)
            except Exception:
                log.exception("on_complete callback failed")
