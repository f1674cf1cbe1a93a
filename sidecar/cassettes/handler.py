"""The cassette wrapper of an upstream's terminal handler: ``record`` or ``replay``.

It wraps the adapter's handler, below every filter, so it sees each attempt as it goes
upstream: after the credential, ``request_headers`` and every plugin filter. That is what makes
redaction complete: the ``auth`` and ``request_headers`` filters mark what they injected on a
route whose adapter shows requests, and a cassette is such a route (the composition says so), so
every header or query parameter the sidecar filled in from a secret is written ``<redacted>``,
as are ``authorization``, ``proxy-authorization``, ``cookie``, ``set-cookie``, ``x-api-key``
and ``cassette.redact_headers``, in requests and responses alike.

- ``record`` forwards the call, then appends the interaction once the response body has been
  read to its end (a streamed body is passed through as it streams, each body kept up to
  ``max_body``). A cassette already ``max_size`` long refuses the call before it is forwarded:
  507 ``cassette_full`` (so the upstream never acts on a call the cassette misses).
- ``replay`` never calls the adapter: the matching interaction answers (:mod:`.matching`), and
  a call that none matches gets 501 ``cassette_no_match`` naming the closest recorded request.

Both answers are sidecar decisions that no retry repeats and no breaker counts. The file is
written with one blocking ``write`` per interaction, from the event loop: this is a test tool,
not a data path. Not here: the file format (:mod:`.file`), matching (:mod:`.matching`).
"""

from __future__ import annotations

__all__ = [
    "ALWAYS_REDACTED",
    "CassetteFull",
    "CassetteNoMatch",
    "cassette_handler",
]

import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus

from ..api.traits import HTTP_STATUSES, AdapterTraits
from ..chain import Handler
from ..config.cassette import CassetteConfig
from ..errors import SidecarError
from ..exchange import Exchange, Headers, Response, read_body
from ..injected import INJECTED_SECRETS, Injected
from .file import REDACTED, CassetteError, append_interaction, body_field, body_of
from .file import load_interactions as load
from .matching import NoMatch, Replayer, request_of

#: Headers written ``<redacted>`` in every cassette.
ALWAYS_REDACTED = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
#: Request headers the connection owns (framing, the rewritten ``Host``): not recorded.
_NOT_RECORDED = frozenset({"host", "content-length", "transfer-encoding"})
#: Response headers a replayed answer frames anew.
_NOT_REPLAYED = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class CassetteFull(SidecarError):
    """The cassette reached ``max_size``: the call was not forwarded."""

    status, grpc_code, code = 507, 8, "cassette_full"  # RESOURCE_EXHAUSTED
    #: a sidecar decision: neither retried nor counted by the circuit breaker
    conditions: tuple[str, ...] = ()


class CassetteNoMatch(SidecarError):
    """No recorded interaction matches the call being replayed."""

    status, grpc_code, code = 501, 12, "cassette_no_match"  # UNIMPLEMENTED
    conditions: tuple[str, ...] = ()


class CassetteUnusable(ValueError):
    """The cassette's file cannot be used; ``key`` is where under the upstream (config error)."""

    def __init__(self, reason: str, key: str = "cassette.path") -> None:
        super().__init__(reason)
        self.key = key


def cassette_handler(
    upstream: str, settings: CassetteConfig, adapter: Handler, traits: AdapterTraits
) -> Handler:
    """``adapter`` wrapped to record, or a handler replaying, as ``settings`` say. Raises
    :class:`CassetteUnusable` for a file replay cannot read or record cannot create, and for an
    adapter whose upstream does not answer in HTTP terms (gRPC: its bodies are message streams
    and its status is in trailers, which a cassette does not keep)."""
    if traits.statuses != HTTP_STATUSES:
        raise CassetteUnusable(
            "a cassette records HTTP calls; this upstream's adapter is not HTTP", "cassette"
        )
    redact = ALWAYS_REDACTED | frozenset(settings.redact_headers)
    if settings.mode == "replay":
        try:
            interactions = load(settings.path)
        except CassetteError as e:
            raise CassetteUnusable(str(e)) from None
        replayer = Replayer(interactions, settings.match, settings.path)
        return _replaying(replayer, redact, settings.max_body)
    folder = Path(settings.path).resolve().parent
    if not folder.is_dir():
        raise CassetteUnusable(f"cassette {settings.path}: the folder {folder} does not exist")
    return _recording(upstream, settings, redact, adapter)


def _redacted_headers(
    headers: Iterable[tuple[str, str]], redact: frozenset[str], injected: Injected | None
) -> list[list[str]]:
    marked = injected.headers if injected is not None else {}
    return [
        [k, REDACTED if k in redact or k in marked else v]
        for k, v in headers
        if k not in _NOT_RECORDED
    ]


def _redacted_query(query: str, injected: Injected | None) -> str:
    if not query or injected is None or not injected.query:
        return query
    parts = []
    for part in query.split("&"):
        name = unquote_plus(part.partition("=")[0])
        parts.append(f"{quote(name)}={REDACTED}" if name in injected.query else part)
    return "&".join(parts)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _recording(
    upstream: str, settings: CassetteConfig, redact: frozenset[str], adapter: Handler
) -> Handler:
    path, limit, max_size = settings.path, settings.max_body, settings.max_size

    async def record(ex: Exchange) -> Response:
        if _size(path) >= max_size:
            raise CassetteFull(
                f"cassette {path} reached max_size ({max_size} bytes): the call was not "
                f"forwarded; raise cassette.max_size or start a new cassette"
            )
        started = time.perf_counter()
        sent = bytearray()
        if isinstance(ex.body, bytes):
            sent += ex.body[: limit + 1]
        else:
            ex.body = _tee(ex.body, sent, limit, None)
        response = await adapter(ex)
        injected = ex.peek(INJECTED_SECRETS)
        request: dict[str, Any] = {
            "method": ex.method,
            "path": ex.path,
            "query": _redacted_query(ex.query, injected),
            "headers": _redacted_headers(ex.headers, redact, injected),
        }
        status, headers = response.status, _redacted_headers(response.headers, redact, None)

        def write(received: bytes) -> None:
            request.update(body_field(bytes(sent), limit))
            interaction = {
                "upstream": upstream,
                "recorded_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "request": request,
                "response": {"status": status, "headers": headers, **body_field(received, limit)},
            }
            append_interaction(path, interaction)

        body = response.body
        if isinstance(body, bytes):
            write(body)
            return response
        received = bytearray()

        def ended(complete: bool) -> None:
            if complete:  # a body cut short is no interaction to replay
                write(bytes(received))

        response.body = _tee(body, received, limit, ended)
        return response

    return record


async def _tee(
    source: AsyncIterator[bytes],
    keep: bytearray,
    limit: int,
    ended: Callable[[bool], None] | None,
) -> AsyncIterator[bytes]:
    """``source`` passed through, its first ``limit + 1`` bytes kept in ``keep`` (one more than
    the bound, so the recorder sees the body was longer); ``ended(complete)`` when it stops."""
    complete = False
    try:
        async for chunk in source:
            room = limit + 1 - len(keep)
            if room > 0:
                keep += chunk[:room]
            yield chunk
        complete = True
    finally:
        if not complete:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()
        if ended is not None:
            ended(complete)


def _replaying(replayer: Replayer, redact: frozenset[str], limit: int) -> Handler:
    async def replay(ex: Exchange) -> Response:
        injected = ex.peek(INJECTED_SECRETS)
        # replay answers from memory: the body is read whole, up to the bound of a recorded one
        body = await read_body(ex, limit)
        call = request_of(
            ex.method,
            ex.path,
            _redacted_query(ex.query, injected),
            _redacted_headers(ex.headers, redact, injected),
            body,
        )
        try:
            found = replayer.answer(call)
        except NoMatch as e:
            raise CassetteNoMatch(str(e)) from None
        recorded = found["response"]
        headers = Headers(
            (str(k).lower(), str(v))
            for k, v in recorded.get("headers") or []
            if str(k).lower() not in _NOT_REPLAYED
        )
        return Response(int(recorded["status"]), headers, body_of(recorded))

    return replay
