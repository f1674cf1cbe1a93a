"""A secret's current value: read once, and re-read when its file changes.

A :class:`SecretValue` wraps one ``{env: NAME}`` / ``{file: PATH}`` reference. An environment
variable cannot change under a running process, so it is read once. A file is checked with
``os.stat`` at most once per ``min_interval`` (1 s) when the value is used, and re-read when its
identity or contents changed (inode, device, size, modification time). ``stat`` follows symlinks,
so the Kubernetes Secret volume update (files point into ``..data``, a symlink the kubelet swaps
to a new directory) is seen although the mounted path never changes. A provider therefore sees a
rotated secret on its first use after the change, without a restart or a reload; a caller that
uses a secret rarely and must not be a second late (the OAuth2 client secret, read once per token
fetch) asks for :meth:`SecretValue.fresh`.

A file that cannot be read for a moment (missing, empty, half-written) keeps the last good value:
rotation never turns a working credential into a failing one. The problem is logged once, naming
the reference only. Nothing here ever logs or raises with a value in the message.

Not here: which secrets a provider uses and how it turns them into a credential.
"""

from __future__ import annotations

__all__ = ["FILE_CHECK_INTERVAL", "AuthConfigProblem", "SecretValue", "UnusableSecret"]

import logging
import os
import time
from collections.abc import Callable

from .types import SecretRef

log = logging.getLogger("sidecar.auth")

#: Seconds between two ``stat`` calls of one secret file (the cost of noticing a rotation).
FILE_CHECK_INTERVAL = 1.0

#: Why a value cannot be used where the secret goes (``None``: it can), e.g. a header's check.
Check = Callable[[str], "str | None"]


class AuthConfigProblem(LookupError):
    """An ``auth`` setting cannot be used; ``key_path`` is where it sits under the upstream
    (``auth.client_secret``): composing routes turns it into the config problem
    ``upstreams.<u>.auth.client_secret: <reason>`` (start-up stops, a reload is refused)."""

    def __init__(self, key_path: str, reason: str) -> None:
        super().__init__(reason)
        self.key_path = key_path


class UnusableSecret(AuthConfigProblem):
    """A secret cannot be read, or its value cannot be used where it goes."""


class SecretValue:
    """The current value of one secret reference (see the module docstring)."""

    __slots__ = ("_checked", "_check", "_clock", "_interval", "_problem", "_stamp", "_value", "ref")

    def __init__(
        self,
        ref: SecretRef,
        key_path: str,
        *,
        check: Check | None = None,
        min_interval: float = FILE_CHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read the secret now; raises :class:`UnusableSecret` (reference and reason only)."""
        self.ref = ref
        self._check = check
        self._interval = min_interval
        self._clock = clock
        self._stamp = self._stat()
        try:
            self._value = self._read()
        except LookupError as e:
            raise UnusableSecret(key_path, str(e)) from None
        self._checked = clock()
        #: the problem last logged for this file, so one problem is logged once
        self._problem: str | None = None

    def get(self) -> str:
        """The value; a file is checked for a change at most once per ``min_interval``."""
        if self.ref.file is None:
            return self._value
        now = self._clock()
        if now - self._checked < self._interval:
            return self._value
        return self._refresh(now)

    @property
    def fixed(self) -> str | None:
        """The value when it can never change (not from a file: read once, until a reload
        reads the config again), else ``None``: a caller on every request may hold it."""
        return self._value if self.ref.file is None else None

    def fresh(self) -> str:
        """The value, the file checked now whatever the interval (for rare, important uses)."""
        if self.ref.file is None:
            return self._value
        return self._refresh(self._clock())

    def _stat(self) -> tuple[int, int, int, int] | None:
        if self.ref.file is None:
            return None
        try:
            st = os.stat(self.ref.file)
        except OSError:
            return None
        return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)

    def _read(self) -> str:
        value = self.ref.reveal()
        if self._check is not None:
            problem = self._check(value)
            if problem is not None:
                raise LookupError(f"the secret {self.ref} {problem}")
        return value

    def _refresh(self, now: float) -> str:
        self._checked = now
        stamp = self._stat()
        if stamp is not None and stamp == self._stamp:
            return self._value
        try:
            value = self._read()
        except LookupError as e:
            # keep serving with the last good value; the stamp is not taken, so the file is
            # read again at the next check (a rotation caught half-way is finished by then)
            reason = str(e)
            if reason != self._problem:
                self._problem = reason
                log.warning(
                    "secret file unusable: the last good value stays in use",
                    extra={"fields": {"secret": str(self.ref), "reason": reason}},
                )
            return self._value
        self._stamp = stamp
        self._problem = None
        if value != self._value:
            self._value = value
            log.info("secret file changed: reloaded", extra={"fields": {"secret": str(self.ref)}})
        return self._value
