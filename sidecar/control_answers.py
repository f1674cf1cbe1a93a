"""What a control port answers, and how it is written: one :class:`Answer` for both servers.

The admin and metrics ports answer probes and scrapes with their own small protocol
(:mod:`sidecar.control_light`) and everything else with aiohttp. Both serve the same
:class:`Answer` objects (made by :mod:`sidecar.admin_routes` and :mod:`sidecar.host_guard`):
aiohttp through :func:`aiohttp_response`, the light protocol through :func:`render`, which writes
exactly what aiohttp writes for it (status line, headers in aiohttp's order, ``Date`` and
``Server`` included), so a client cannot tell which one answered.

Not here: parsing requests, connections (:mod:`sidecar.control_light`).
"""

from __future__ import annotations

__all__ = ["NOT_FOUND", "Answer", "aiohttp_response", "render", "server_software"]

import functools
import sys
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer of a control port, served as is by this protocol or by aiohttp."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    #: headers before ``Content-Type``, in this order (aiohttp writes the ones given first)
    headers: tuple[tuple[str, str], ...] = ()


NOT_FOUND = Answer(404, b"404: Not Found")


def aiohttp_response(answer: Answer) -> web.Response:
    """``answer`` as an aiohttp handler returns it (aiohttp then writes what :func:`render`
    does)."""
    from aiohttp import web  # only called by aiohttp handlers: it is loaded already

    headers = {**dict(answer.headers), "Content-Type": answer.content_type}
    return web.Response(status=answer.status, body=answer.body, headers=headers)


def render(answer: Answer, *, head_only: bool, close: bool) -> bytes:
    """``answer`` as aiohttp writes it: status line, the given headers, ``Content-Type``,
    ``Content-Length``, ``Date``, ``Server``, then ``Connection: close`` when closing."""
    reason = HTTPStatus(answer.status).phrase
    lines = [f"HTTP/1.1 {answer.status} {reason}"]
    lines += [f"{name}: {value}" for name, value in answer.headers]
    lines.append(f"Content-Type: {answer.content_type}")
    lines.append(f"Content-Length: {len(answer.body)}")
    lines.append(f"Date: {_http_date(int(time.time()))}")
    lines.append(f"Server: {server_software()}")
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + answer.body


@functools.lru_cache(maxsize=2)
def _http_date(now: int) -> str:
    t = time.gmtime(now)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


@functools.cache
def server_software() -> str:
    """aiohttp's ``Server`` value (``Python/3.11 aiohttp/3.x``), read without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    python = f"Python/{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        return f"{python} aiohttp/{version('aiohttp')}"
    except PackageNotFoundError:
        return python
