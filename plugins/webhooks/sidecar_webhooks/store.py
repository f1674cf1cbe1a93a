"""The durable delivery queue: files in one directory per webhooks upstream.

Why files and not Redis: the sidecar runs beside one app, and a queue in a local directory
needs no other server to run, survives a crash of the sidecar (or of the machine) and is read
back at start. An event's body is written once, ``bodies/<msg-id>``; each delivery (event ×
endpoint) is a small JSON file in ``pending/`` or ``dead/`` saying where it stands. Every write
goes to ``tmp/``, is fsynced, renamed into place and the directory fsynced, the body before its
deliveries, so after a SIGKILL a file is either whole or absent and no delivery lacks its body.
Bodies stay on disk (memory holds only the small state), read again at each attempt. The
``Store`` does blocking I/O: the engine calls it through ``asyncio.to_thread``. It does not
schedule or send anything, and does not count which bodies are still needed (the engine does).
"""

from __future__ import annotations

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
    """One event to one endpoint, with what its attempts found so far (the body is on disk)."""

    msg_id: str
    event_type: str
    endpoint: str
    size: int
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
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Delivery:
        return cls(**json.loads(raw))

    def describe(self) -> dict[str, Any]:
        """What the admin view shows (never the body)."""
        return {**asdict(self), "key": self.key}


class Store:
    """The files of one webhooks upstream under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dirs = {"pending": root / "pending", "dead": root / "dead"}
        self.bodies = root / "bodies"
        self.tmp = root / "tmp"
        #: one empty file per endpoint disabled by a 410 answer, so a restart keeps it off
        self.disabled_dir = root / "disabled"
        for d in (*self.dirs.values(), self.bodies, self.tmp, self.disabled_dir):
            d.mkdir(parents=True, exist_ok=True)
        # a write cut by a crash never got its rename: nothing in tmp/ was acknowledged
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)

    def load(self) -> list[Delivery]:
        """Every delivery on disk, pending and dead (a file that cannot be read is skipped), and
        no body that no delivery needs (an accept cut between body and deliveries)."""
        out: list[Delivery] = []
        for state, d in self.dirs.items():
            for path in d.glob("*.json"):
                try:
                    delivery = Delivery.from_json(path.read_bytes())
                except (OSError, ValueError, TypeError, KeyError):
                    continue
                delivery.state = state  # type: ignore[assignment]
                out.append(delivery)
        needed = {d.msg_id for d in out}
        for body in self.bodies.iterdir():
            if body.name not in needed:
                body.unlink(missing_ok=True)
        return out

    def add(self, body: bytes, deliveries: list[Delivery]) -> None:
        """A new event: its body, then its deliveries, durably."""
        if deliveries:
            self._write(self.bodies / deliveries[0].msg_id, body)
        self.save(deliveries, also_sync=(self.bodies,))

    def read_body(self, msg_id: str) -> bytes:
        return (self.bodies / msg_id).read_bytes()

    def save(self, deliveries: list[Delivery], also_sync: tuple[Path, ...] = ()) -> None:
        """Write each delivery into its state's directory, durably, and drop any copy in the
        other state's directory (a redelivery or a death moves it)."""
        touched: set[Path] = set(also_sync)
        for delivery in deliveries:
            target = self.dirs[delivery.state]
            self._write(target / f"{delivery.key}.json", delivery.to_json())
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

    def remove_body(self, msg_id: str) -> None:
        """Forget a body no delivery needs any more."""
        (self.bodies / msg_id).unlink(missing_ok=True)

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

    def _write(self, path: Path, data: bytes) -> None:
        """``data`` at ``path``, whole or not at all (the caller fsyncs the directory)."""
        tmp = self.tmp / f"{path.name}.{uuid.uuid4().hex}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
