"""Structured JSON logs: one object per line on stderr (the sidecar's own log) and stdout (access).

Log records become ``{"ts", "level", "logger", "msg", ...extra}``; pass fields with
``log.info("msg", extra={"fields": {...}})``. Nothing here formats secrets: callers pass
references, never values.
"""

from __future__ import annotations

__all__ = ["ACCESS_LOGGER", "JsonFormatter", "configure_logging"]

import json
import logging
import sys
import time
from typing import Any

ACCESS_LOGGER = "sidecar.access"


class JsonFormatter(logging.Formatter):
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
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "info") -> None:
    """JSON lines: the access log on stdout, everything else on stderr."""
    lvl = getattr(logging, level.upper())
    root = logging.getLogger("sidecar")
    root.setLevel(lvl)
    root.propagate = False
    for h in list(root.handlers):
        root.removeHandler(h)
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(JsonFormatter())
    root.addHandler(err)
    access = logging.getLogger(ACCESS_LOGGER)
    access.propagate = False
    for h in list(access.handlers):
        access.removeHandler(h)
    out = logging.StreamHandler(sys.stdout)
    out.setFormatter(JsonFormatter())
    access.addHandler(out)
    access.setLevel(lvl)
