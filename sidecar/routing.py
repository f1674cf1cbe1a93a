"""Path normalisation and the route table.

Routing happens on the normalised path (see below), in this order:

1. explicit ``routes`` from the config, first match wins (path prefix on segment boundaries, host,
   exact header values);
2. ``Host: <upstream>`` (port ignored): the path is forwarded unchanged, never for a name of
   the sidecar's own address (``localhost``, ``127.0.0.1``...: the app sends those to reach the
   sidecar itself; config validation refuses upstreams named so, and the table never routes them
   by ``Host`` either);
3. ``/<upstream>/<rest>``: the first segment names the upstream and is stripped.

An absolute-form request (``GET http://payments/x``, an app using the sidecar as its HTTP proxy)
routes by its authority only: an explicit route with a matching ``host`` or an upstream of that
name, never the path fallback, so ``http://evil.example/payments/`` is a 404 and not a detour.

Only configured upstreams are reachable. Normalisation decodes percent-encoded unreserved
characters, resolves ``.``/``..`` segments (never above the root) and merges repeated slashes; a
path with an encoded ``/`` or ``\\``, or a dot segment carrying ``;`` parameters (``..;``, which
some servers resolve as ``..``), is refused, because an upstream decoding it later would see a
different path than the one routing and policy matched. The query is never touched.

Not here: parsing the request target (:mod:`sidecar.http1`) or what a route does.
"""

from __future__ import annotations

__all__ = [
    "ExplicitRoute",
    "Route",
    "RouteTable",
    "bare_host",
    "match_explicit",
    "normalize_path",
]

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .chain import Handler
from .errors import BadRequest, NoRoute
from .exchange import Headers
from .hosts import is_loopback_host

if TYPE_CHECKING:
    from .config.models import RouteConfig

_PCT: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)


def _pct(m: re.Match[str]) -> str:
    byte = int(m.group(1), 16)
    if byte in _UNRESERVED:
        return chr(byte)
    if byte in (0x2F, 0x5C):
        raise NoRoute("the path contains an encoded '/' or '\\', which is refused")
    if byte == 0:
        raise BadRequest("the path contains an encoded NUL")
    return "%" + m.group(1).upper()


def normalize_path(path: str) -> str:
    """RFC 3986 §6.2.2 normalisation plus merged slashes; raises for hostile paths."""
    if not path.startswith("/"):
        raise BadRequest("the request target must start with '/'")
    if "\\" in path:
        raise NoRoute("the path contains a '\\', which is refused")
    if "%" in path:
        escapes = _PCT.findall(path)
        path = _PCT.sub(_pct, path)
        # a '%' that starts no escape, followed by encoded hex digits ("%%32%46"), decodes into
        # a new escape ("%2F") that the upstream would decode once more: the path it sees would
        # not be the one routing and policy matched
        if len(_PCT.findall(path)) != sum(int(h, 16) not in _UNRESERVED for h in escapes):
            raise BadRequest("the path's percent-encoding decodes into a new escape")
    if "/." not in path and "//" not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for seg in segments[1:]:
        if seg == "..":
            if out:
                out.pop()
        elif seg == "." or seg == "":
            continue
        else:
            if seg[0] == "." and seg.partition(";")[0] in (".", ".."):
                raise NoRoute(
                    "the path contains a dot segment with ';' parameters, which is refused"
                )
            out.append(seg)
    trailing = segments[-1] in ("", ".", "..") and len(out) > 0
    return "/" + "/".join(out) + ("/" if trailing else "")


@dataclass(frozen=True, slots=True)
class Route:
    """A resolved destination: the composed handler and how to rewrite the path."""

    name: str
    upstream: str
    handler: Handler


@dataclass(frozen=True, slots=True)
class ExplicitRoute:
    """A configured route: what it matches and how it rewrites the path."""

    route: Route
    path_prefix: str | None
    host: str | None
    headers: tuple[tuple[str, str], ...]
    prefix_rewrite: str | None

    @classmethod
    def of(cls, route: Route, rc: RouteConfig) -> ExplicitRoute:
        """The route ``rc`` of the config file, ending in ``route``."""
        m = rc.match
        host = m.host.lower() if m.host else None
        return cls(route, m.path_prefix, host, tuple(m.headers.items()), rc.prefix_rewrite)


#: distinct ``Host`` values remembered per route table, and the longest remembered (a DNS
#: name is at most 253 characters, then a port)
_HOST_ROUTES_MAX: Final = 256
_HOST_KEY_MAX: Final = 270


class RouteTable:
    """Immutable once built; a reload builds a new one and swaps it in."""

    def __init__(
        self,
        by_upstream: dict[str, Route],
        explicit: Sequence[ExplicitRoute] = (),
    ) -> None:
        self.by_upstream = by_upstream
        #: ``Host`` is case-insensitive (RFC 9110 §4.2.3), upstream names in paths are not;
        #: a loopback name is how the app reaches the sidecar, so it never routes by Host
        self.by_host = {
            name.lower(): route
            for name, route in by_upstream.items()
            if not is_loopback_host(name.lower())
        }
        self.explicit = tuple(explicit)
        #: whether a call's route depends on its path and Host alone (no route matches header
        #: values): then a connection may keep its last call's route for the next call with
        #: the same path and Host
        self.by_path_and_host = not any(r.headers for r in self.explicit)
        #: ``Host`` values as the apps send them → their route by host, if any (what
        #: ``by_host`` answers for the value without its port, lower-cased); emptied when full
        self._host_routes: dict[str, Route | None] = {}

    def resolve(
        self, path: str, host: str | None, headers: Headers, *, authority_only: bool = False
    ) -> tuple[Route, str]:
        """The route for a normalised ``path`` and the path to forward.

        ``authority_only`` (absolute-form targets): route by ``host`` alone, no path fallback.
        """
        if self.explicit:
            hit = match_explicit(self.explicit, path, host, headers, authority_only)
            if hit is not None:
                return hit
        if host and self.by_host:
            seen = self._host_routes
            if host in seen:  # a connection's every call: one lookup
                route = seen[host]
            else:
                route = self.by_host.get(bare_host(host))
                if len(host) <= _HOST_KEY_MAX:  # a name and a port; never a hostile 60 KB
                    if len(seen) >= _HOST_ROUTES_MAX:
                        seen.clear()
                    seen[host] = route
            if route is not None:
                return route, path
        if authority_only:
            raise NoRoute(f"no upstream or route for the authority {host!r}")
        end = path.find("/", 1)
        first = path[1:] if end < 0 else path[1:end]
        route = self.by_upstream.get(first)
        if route is None:
            raise NoRoute(
                f"no upstream or route matches {path!r}"
                if first
                else "no upstream named in the path"
            )
        return route, ("/" if end < 0 else path[end:])


def match_explicit(
    explicit: Sequence[ExplicitRoute],
    path: str,
    host: str | None,
    headers: Headers,
    authority_only: bool = False,
) -> tuple[Route, str] | None:
    """The first explicit route matching a call (path prefix on segment boundaries, host
    without port, exact header values) and the path to forward (``prefix_rewrite`` applied);
    ``None`` when none matches. Shared by the HTTP and the gRPC route tables."""
    bare = bare_host(host) if host else None
    for r in explicit:
        if authority_only and r.host is None:
            continue
        prefix = r.path_prefix
        if (
            prefix is not None
            and prefix != "/"
            and not (path == prefix or path.startswith(prefix + "/"))
        ):
            continue
        if r.host is not None and r.host != bare:
            continue
        if r.headers and not all(headers.get(k) == v for k, v in r.headers):
            continue
        forwarded = path
        if prefix is not None and r.prefix_rewrite is not None:
            rest = path[len(prefix) :] if prefix != "/" else path
            forwarded = (r.prefix_rewrite.rstrip("/") + rest) or "/"
            if not forwarded.startswith("/"):
                forwarded = "/" + forwarded
        return r.route, forwarded
    return None


def bare_host(host: str) -> str:
    """``Host`` without its port, lower-cased: ``Payments:8080`` → ``payments``."""
    if host[-1:].isdigit() and ":" in host:
        host = host.rpartition(":")[0]
    return host.lower()
