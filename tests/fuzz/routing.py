"""Fuzz harness for what routing decides on: path normalisation, the request target's forms,
the ``Host`` check and the route table.

Checked for every input: :func:`~sidecar.routing.normalize_path` refuses with the sidecar's own
errors only (400 or 404), and what it returns is normal (starts with ``/``, no empty, ``.`` or
``..`` segment, no encoded ``/`` or ``\\`` or unreserved character, the same again when
normalised twice); an absolute-form target is accepted with a valid host or refused with 400;
the route table finds a route or answers 404, and forwards a path that starts with ``/``.
Not here: the listener that calls them (:mod:`tests.fuzz.http_listener`).
"""

from __future__ import annotations

import re
import time

from sidecar.errors import BadRequest, NoRoute, SidecarError
from sidecar.exchange import Headers, Response
from sidecar.http1 import parse_absolute_target, split_origin_target, valid_host
from sidecar.routing import ExplicitRoute, Route, RouteTable, normalize_path

from .common import PropertyBroken, input_seconds

_ENCODED = re.compile(r"%(?:2[fF]|5[cC]|[46][1-9a-fA-F]|[57][0-9aA]|3[0-9]|2[dDeE]|5[fF]|7[eE])")


async def _never(ex: object) -> Response:
    raise AssertionError("routing never calls a handler")


def _route(name: str) -> Route:
    return Route(name, name, _never)


TABLE = RouteTable(
    {"up": _route("up"), "Pay": _route("Pay")},
    [
        ExplicitRoute(_route("v2"), "/api/v2", None, (), "/v2"),
        ExplicitRoute(_route("root"), "/rooted", None, (), "/"),
        ExplicitRoute(_route("hosted"), None, "h.example", (), None),
        ExplicitRoute(_route("hdr"), "/", None, (("x-r", "1"),), None),
    ],
)


def routing_target(data: bytes) -> None:
    """``data`` as a request target (latin-1, as the listener decodes it); the first byte
    picks the ``Host`` and header the table sees."""
    if not data:
        return
    started = time.perf_counter()
    control, raw = data[0], data[1:]
    text = raw.decode("latin-1")
    if raw[:1] == b"/":
        path, _query = split_origin_target(text)
        host = ("up", "UP:80", "h.example", None)[control % 4]
    else:
        try:
            host, path, _query = parse_absolute_target(raw)
        except BadRequest:
            return
        if not valid_host(host):
            raise PropertyBroken(f"an absolute-form target with host {host!r} accepted")
    check_path(path, host, Headers([("x-r", "1")] if control & 4 else []))
    if time.perf_counter() - started > input_seconds():
        raise PropertyBroken(f"routing {len(raw)} bytes took over {input_seconds()}s")


def check_path(path: str, host: str | None, headers: Headers) -> None:
    """Normalise ``path`` and route it; raises :class:`PropertyBroken` if a property fails."""
    try:
        norm = normalize_path(path)
    except (BadRequest, NoRoute):
        return
    except SidecarError as e:
        raise PropertyBroken(f"normalize_path raised {e!r}") from e
    if not norm.startswith("/"):
        raise PropertyBroken(f"{path!r} normalised to {norm!r}, not absolute")
    segments = norm.split("/")[1:]
    inner = segments[:-1]  # the last one may be empty: a trailing slash is kept
    if any(s in ("", ".", "..") for s in inner) or segments[-1] in (".", ".."):
        raise PropertyBroken(f"{path!r} normalised to {norm!r}, which has dot or empty segments")
    if "\\" in norm or _ENCODED.search(norm):
        raise PropertyBroken(f"{path!r} normalised to {norm!r}, still encoded")
    if normalize_path(norm) != norm:
        raise PropertyBroken(f"normalising {norm!r} again changes it")
    try:
        route, forwarded = TABLE.resolve(norm, host, headers)
    except NoRoute:
        return
    if not forwarded.startswith("/"):
        raise PropertyBroken(f"{norm!r} forwarded to {route.name} as {forwarded!r}")
