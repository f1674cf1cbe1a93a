"""The ``Host`` check of the admin and metrics ports: a defence against DNS rebinding.

A page in the user's browser can rebind its own DNS name (``evil.example``) to 127.0.0.1 and then
read ``http://evil.example:15000/config`` as same-origin: the connection reaches the admin port,
and only the ``Host`` header (``evil.example:15000``) tells the request was not meant for it.
So each port answers only the ``Host`` values it is really reached by, and refuses the others
with **421 Misdirected Request** (RFC 9110 §15.5.20), a plain body saying why, a count in
``sidecar_admin_misdirected_total{port}`` and one warning per port (later ones are only counted,
so a page hammering the port cannot flood the log):

- the **admin port** (loopback only): loopback names and literals (``127.0.0.1``, ``localhost``,
  ``[::1]``..., :func:`sidecar.hosts.is_loopback_host`) and its configured address's host, with
  any port or none;
- the **metrics port** (``admin.metrics_address``, which may bind the pod address): the same,
  plus any IP literal, because the kubelet's probes and Prometheus' scrapes name the pod by its
  IP (``Host: 10.1.2.3:15030``). No DNS name but the loopback ones: a rebinding page always has
  one.

A request without ``Host`` (HTTP/1.0) is answered: browsers always send one. Not here: what the
ports serve (:mod:`sidecar.admin`, :mod:`sidecar.metrics_port`).
"""

from __future__ import annotations

__all__ = [
    "MisdirectedRequests",
    "admin_hosts",
    "host_guard",
    "metrics_hosts",
    "misdirected_answer",
    "refusing",
]

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter

from .config.types import split_address
from .control_answers import Answer, aiohttp_response
from .control_light import Refusal
from .hosts import is_ip_literal, is_loopback_host, split_host

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.typedefs import Middleware

log = logging.getLogger("sidecar")

#: Whether a ``Host`` value's host part (lower-case, no port, no brackets) may be answered.
Accept = Callable[[str], bool]
_Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


def admin_hosts(address: str) -> Accept:
    """The admin port's rule: loopback, or the host of ``address`` (its own)."""
    own = split_address(address)[0].lower()
    return lambda host: is_loopback_host(host) or host == own


def metrics_hosts(address: str) -> Accept:
    """The metrics port's rule: loopback, its own host, or any IP literal (the pod's IP)."""
    own = split_address(address)[0].lower()
    return lambda host: host == own or is_loopback_host(host) or is_ip_literal(host)


class MisdirectedRequests:
    """Counts refused requests per port and logs the first one of each port."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = Counter(
            "sidecar_admin_misdirected",
            "Requests the admin or metrics port refused with 421: their Host names another site "
            "(a DNS-rebinding page in a browser, or a misconfigured client).",
            ["port"],
            registry=registry,
        )
        self._logged: set[str] = set()

    def refused(self, port: str, host: str) -> None:
        self.counter.labels(port).inc()
        if port in self._logged:
            return
        self._logged.add(port)
        log.warning(
            "request refused: its Host names another site (DNS rebinding?); later ones are "
            "only counted in sidecar_admin_misdirected_total",
            extra={"fields": {"port": port, "host": host[:100]}},
        )


def misdirected_answer(port: str, allowed: str) -> Answer:
    """The 421 a port answers to a ``Host`` it refuses; ``allowed`` says in the body which
    ``Host`` values the port answers."""
    body = (
        f"421 Misdirected Request: the {port} port answers only Host {allowed} (with any port). "
        "A request naming another site is refused, so a web page that points its own DNS name "
        "at this machine cannot read this port.\n"
    )
    headers = (("x-sidecar-error", "misdirected_request"), ("cache-control", "no-store"))
    return Answer(421, body.encode(), headers=headers)


def refusing(port: str, seen: MisdirectedRequests, allowed: str) -> Refusal:
    """The light protocol's refusal of a ``Host`` (:mod:`sidecar.control_light`): counted and
    answered as :func:`host_guard` does."""
    answer = misdirected_answer(port, allowed)

    def refuse(host: str) -> Answer:
        seen.refused(port, host)
        return answer

    return refuse


def host_guard(port: str, accept: Accept, seen: MisdirectedRequests, allowed: str) -> Middleware:
    """aiohttp middleware answering 421 to a request whose ``Host`` ``accept`` refuses;
    ``allowed`` says in the body which ``Host`` values the port answers."""
    from aiohttp import web  # the port's aiohttp app is being built: it is loaded already

    answer = misdirected_answer(port, allowed)

    @web.middleware
    async def guard(request: web.Request, handler: _Handler) -> web.StreamResponse:
        value = request.headers.get("Host")
        if value is None or accept(split_host(value)[0]):
            return await handler(request)
        seen.refused(port, value)
        return aiohttp_response(answer)

    return guard
