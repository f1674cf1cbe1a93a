"""Recent verdicts of the directory, so a caller's every call does not cost three round trips.

A bounded LRU (``max_entries``) of :class:`Verdict` keyed by
``HMAC-SHA256(salt, username NUL password)``, where ``salt`` is 32 random bytes made when the
cache is made (per process, never stored): the plaintext password is never kept, and a key
cannot be tested against a password list without the salt. A granted verdict lives ``ttl``, a
refused password ``failure_ttl`` (shorter, so a corrected password or a new account works
soon). A directory that could not answer is never cached: the next call asks again.

Not here: the directory (:mod:`.directory`); what a verdict allows (:mod:`.gate`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the directory said about one user name and password."""

    #: the password was right
    granted: bool
    username: str = ""
    dn: str = ""
    #: the user's groups: names (``name_attribute``) and DNs, as read
    group_names: tuple[str, ...] = ()
    group_dns: tuple[str, ...] = ()


class VerdictCache:
    """An LRU of verdicts with their expiry (see the module docstring)."""

    def __init__(
        self,
        ttl: float,
        failure_ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl, self._failure_ttl, self._max = ttl, failure_ttl, max_entries
        self._clock = clock
        self._salt = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[float, Verdict]] = OrderedDict()

    def key(self, username: str, password: str) -> bytes:
        """The cache key of a user name and password (never the password itself)."""
        text = username.encode() + b"\x00" + password.encode()
        return hmac.new(self._salt, text, hashlib.sha256).digest()

    def get(self, key: bytes) -> Verdict | None:
        """The live verdict of ``key``, or ``None`` (an expired one is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, verdict = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return verdict

    def put(self, key: bytes, verdict: Verdict) -> None:
        ttl = self._ttl if verdict.granted else self._failure_ttl
        if ttl <= 0:
            return
        self._entries[key] = (self._clock() + ttl, verdict)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
