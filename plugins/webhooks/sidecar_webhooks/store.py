"""The durable delivery queue: one JSON file per delivery (event × endpoint) in a directory.

Why files and not Redis: the sidecar runs beside one app, and a queue in a local directory
needs no other server to run, survives a crash of the sidecar (or of the machine) and is read
back at start. Each write goes to ``tmp/``, is fsynced, renamed into ``pending/`` or ``dead/``
and the directory fsynced, so after a SIGKILL a delivery file is either whole or absent, never
half written. A delivered event's file is removed. The ``Store`` does blocking I/O: the engine
calls it through ``asyncio.to_thread``. It does not schedule or send anything.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

State = Literal["pending", "dead"]
#: attempts kept in a delivery's history (its ``attempts`` counter is exact)
HISTORY = 20


@dataclass
class Delivery:
    """One event to one endpoint, with what its attempts found so far."""

    msg_id: str
    event_type: str
    endpoint: str
    body: bytes
    content_type: str
    created: float
    next_at: float
    attempts: int = 0
    state: State = "pending"
    last_error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.msg_id}.{self.endpoint}"

    def to_json(self) -> bytes:
        data = asdict(self)
        data["body"] = base64.b64encode(self.body).decode()
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Delivery:
        data = json.loads(raw)
        data["body"] = base64.b64decode(data["body"])
        return cls(**data)

    def describe(self) -> dict[str, Any]:
        """What the admin view shows: everything but the body."""
        out = asdict(self)
        del out["body"]
        out["key"] = self.key
        out["size"] = len(self.body)
        return out


class Store:
    """The files of one webhooks upstream under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dirs = {"pending": root / "pending", "dead": root / "dead"}
        self.tmp = root / "tmp"
        #: one empty file per endpoint disabled by a 410 answer, so a restart keeps it off
        self.disabled_dir = root / "disabled"
        for d in (*self.dirs.values(), self.tmp, self.disabled_dir):
            d.mkdir(parents=True, exist_ok=True)
        # a write cut by a crash never got its rename: nothing in tmp/ was acknowledged
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)

    def load(self) -> list[Delivery]:
        """Every delivery on disk, pending and dead (a file that cannot be read is skipped)."""
        out: list[Delivery] = []
        for state, d in self.dirs.items():
            for path in d.glob("*.json"):
                try:
                    delivery = Delivery.from_json(path.read_bytes())
                except (OSError, ValueError, TypeError, KeyError):
                    continue
                delivery.state = state  # type: ignore[assignment]
                out.append(delivery)
        return out

    def save(self, deliveries: list[Delivery]) -> None:
        """Write each delivery into its state's directory, durably, and drop any copy in the
        other state's directory (a redelivery or a death moves it)."""
        touched: set[Path] = set()
        for delivery in deliveries:
            tmp = self.tmp / f"{delivery.key}.{uuid.uuid4().hex}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, delivery.to_json())
                os.fsync(fd)
            finally:
                os.close(fd)
            target = self.dirs[delivery.state]
            os.replace(tmp, target / f"{delivery.key}.json")
            touched.add(target)
            for state, d in self.dirs.items():
                if state != delivery.state:
                    stale = d / f"{delivery.key}.json"
                    if stale.exists():
                        stale.unlink()
                        touched.add(d)
        for d in touched:
            _fsync_dir(d)

    def remove(self, delivery: Delivery) -> None:
        """Forget a delivered (or trimmed) delivery."""
        (self.dirs[delivery.state] / f"{delivery.key}.json").unlink(missing_ok=True)
        # no directory fsync: a delivery that reappears after a crash is sent again, which
        # at-least-once allows; the fsync would cost every successful delivery a disk flush

    def disabled(self) -> set[str]:
        """The endpoints a 410 disabled."""
        return {p.name for p in self.disabled_dir.iterdir()}

    def set_disabled(self, endpoint: str, disabled: bool) -> None:
        marker = self.disabled_dir / endpoint
        if disabled:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)
        _fsync_dir(self.disabled_dir)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
