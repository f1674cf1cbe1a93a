"""What one config reload said, for the admin API's ``Reload``: why it was refused, which changes
wait for a restart.

:meth:`Sidecar.reload <sidecar.app.Sidecar.reload>` answers only whether the new config is in
effect; it tells the rest the way every reload does (SIGHUP, a file change): one log record per
problem (``fields["problem"]``, the ``file: key.path: reason`` line ``sidecar check`` prints) and
one listing the restart-only keys (``fields["keys"]``). :class:`ReloadReport` reads those records
while the reload runs, keeping only the ones logged by the calling task, so a concurrent reload's
lines never end up in this answer. A record the logger's level drops (restart-only keys are a
warning) is missing here as it is from the log.

Not here: reloading itself.
"""

from __future__ import annotations

__all__ = ["ReloadReport"]

import asyncio
import logging
from types import TracebackType

#: the logger Sidecar.reload reports through
RELOAD_LOGGER = "sidecar"
#: the message of the record listing restart-only keys (sidecar/app.py)
_RESTART_ONLY = "these changes take effect after a restart"
#: records that only repeat what the problems say
_ECHO = frozenset({"the old config keeps serving"})
#: bound on the problems one answer carries (a config may have many)
MAX_PROBLEMS = 100


class ReloadReport(logging.Handler):
    """``with ReloadReport() as report: applied = await sidecar.reload()``, then read
    :attr:`problems` and :attr:`restart_required`."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._task = asyncio.current_task()
        self.problems: list[str] = []
        self.restart_required: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if asyncio.current_task() is not self._task or record.getMessage() in _ECHO:
            return
        fields = getattr(record, "fields", None) or {}
        if record.getMessage().startswith(_RESTART_ONLY):
            self.restart_required.extend(str(k) for k in fields.get("keys", ()))
        elif len(self.problems) < MAX_PROBLEMS:
            problem = fields.get("problem")
            if problem is None:
                # a skipped reload, or an unexpected error: the message (and the error) say why
                problem = record.getMessage()
                if fields:
                    problem += ": " + ", ".join(f"{k}={v}" for k, v in fields.items())
                if record.exc_info and record.exc_info[1] is not None:
                    error = record.exc_info[1]
                    problem = f"{problem}: {type(error).__name__}: {error}"
            self.problems.append(str(problem))

    def __enter__(self) -> ReloadReport:
        logging.getLogger(RELOAD_LOGGER).addHandler(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        logging.getLogger(RELOAD_LOGGER).removeHandler(self)
