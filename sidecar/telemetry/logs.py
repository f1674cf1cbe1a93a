"""Structured JSON logs: one object per line, the sidecar's own log on stderr, the access log on
stdout (so a log shipper can route them apart without parsing). The access log's lines are
built by the filter itself and written in batches by :mod:`sidecar.telemetry.access_writer`.

Each record becomes ``{"ts", "level", "logger", "msg", ...fields}``; pass fields with
``log.info("msg", extra={"fields": {...}})``. An exception's traceback goes under ``exception``.
Third-party loggers (asyncio, aiohttp) are captured in the same format at WARNING, so nothing
reaches stderr as plain text. Not here: what is logged or when (callers decide), and nothing here
formats secrets: callers pass references, never values.
"""

from __future__ import annotations

__all__ = ["ACCESS_LOGGER", "JsonFormatter", "configure_logging", "timestamp"]

import atexit
import json
import logging
import sys
import time
from typing import Any

from . import access_writer

ACCESS_LOGGER = "sidecar.access"

#: Marks the handlers :func:`configure_logging` installs, so calling it again replaces only them.
_OURS = "_sidecar_handler"
_exit_hooked = False


#: (second, its formatted prefix): one ``strftime`` per second, not per line. One tuple, so a
#: thread never sees a second with another second's prefix.
_ts_cache: tuple[int, str] = (-1, "")


def timestamp(created: float) -> str:
    """``created`` (``time.time()``) as ``2026-11-26T10:14:38.663Z``: UTC, milliseconds."""
    global _ts_cache
    sec = int(created)
    cached_sec, prefix = _ts_cache
    if sec != cached_sec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _ts_cache = (sec, prefix)
    # the milliseconds as logging computes LogRecord.msecs
    return f"{prefix}.{int((created - sec) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: fixed keys first, then the caller's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def _handler(stream: Any) -> logging.Handler:
    h = logging.StreamHandler(stream)
    h.setFormatter(JsonFormatter())
    setattr(h, _OURS, True)
    return h


def _install(logger: logging.Logger, handler: logging.Handler) -> None:
    for h in list(logger.handlers):
        if getattr(h, _OURS, False):
            logger.removeHandler(h)
    logger.addHandler(handler)


def configure_logging(level: str = "info") -> None:
    """JSON lines: the access log on stdout, everything else on stderr.

    ``level`` applies to the sidecar's loggers and to the access log: above ``info`` the access
    log keeps only the calls that failed (the access_log filter checks this when routes are
    composed, so it costs nothing per successful call).
    """
    lvl = getattr(logging, level.upper())
    own = logging.getLogger("sidecar")
    own.setLevel(lvl)
    own.propagate = False
    _install(own, _handler(sys.stderr))
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(lvl)
    access.propagate = False
    _install(access, _handler(sys.stdout))
    # the access_log filter writes its lines through this, batched off the event loop; the
    # logger keeps its level (the filter reads it) and its handler (for anything else using it)
    access_writer.install(access_writer.AccessLogWriter())
    global _exit_hooked
    if not _exit_hooked:
        _exit_hooked = True
        atexit.register(access_writer.install, None)  # writes the last lines, stops the thread
    # libraries (asyncio's "Task exception was never retrieved", aiohttp's server errors)
    root = logging.getLogger()
    root.setLevel(max(lvl, logging.WARNING))
    _install(root, _handler(sys.stderr))
