"""Structured JSON logs: one object per line, the sidecar's own log on stderr, the access log on
stdout (so a log shipper can route them apart without parsing).

Each record becomes ``{"ts", "level", "logger", "msg", ...fields}``; pass fields with
``log.info("msg", extra={"fields": {...}})``. An exception's traceback goes under ``exception``.
Third-party loggers (asyncio, aiohttp) are captured in the same format at WARNING, so nothing
reaches stderr as plain text. Not here: what is logged or when (callers decide), and nothing here
formats secrets: callers pass references, never values.
"""

from __future__ import annotations

__all__ = ["ACCESS_LOGGER", "JsonFormatter", "configure_logging"]

import json
import logging
import sys
import time
from typing import Any

ACCESS_LOGGER = "sidecar.access"

#: Marks the handlers :func:`configure_logging` installs, so calling it again replaces only them.
_OURS = "_sidecar_handler"


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: fixed keys first, then the caller's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
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
    # libraries (asyncio's "Task exception was never retrieved", aiohttp's server errors)
    root = logging.getLogger()
    root.setLevel(max(lvl, logging.WARNING))
    _install(root, _handler(sys.stderr))
