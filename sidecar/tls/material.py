"""TLS material that follows its files: an ``SSLContext`` rebuilt when the certificate, key or CA
files change, so new handshakes use the new material without a restart.

A :class:`TlsMaterial` builds its context once from files (errors say which file and why, for the
config problem that stops start-up or refuses a reload), then :meth:`TlsMaterial.refresh` checks
the files with ``os.stat`` at most once per ``min_interval`` and builds a new context when one of
them changed (device, inode, size, modification or change time). ``stat`` follows symlinks, so the
Kubernetes Secret volume update (``tls.crt`` → ``..data/tls.crt``, the ``..data`` link swapped to
a new directory) is seen although the mounted paths never change.

Established connections keep the context they were made with (an ``SSLObject`` holds its own
reference); only new handshakes take :attr:`TlsMaterial.context`. A rotation caught half-way (the
certificate replaced, not yet the key; a file half-written) fails to build: the old context stays,
the problem is logged once, and the files are tried again at the next check, so a rotation never
turns working TLS into failing TLS.

Not here: who calls :meth:`~TlsMaterial.refresh` (the inbound listener's watch task; an upstream's
client context on each new connection), what a context checks (:mod:`.contexts`).
"""

from __future__ import annotations

__all__ = ["FILE_CHECK_INTERVAL", "TlsFileError", "TlsMaterial", "load_pair"]

import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping, Sequence

from .certinfo import CertInfo, read_cert_info

log = logging.getLogger("sidecar.tls")

#: Seconds between two looks at the files of one material (the cost of noticing a rotation).
FILE_CHECK_INTERVAL = 1.0

_Stamp = tuple[tuple[int, int, int, int, int] | None, ...]


class TlsFileError(LookupError):
    """A certificate, key or CA file cannot be used; ``key`` is the config key that names it
    (``cert``, ``key``, ``ca``), ``path`` the file."""

    def __init__(self, key: str, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.key = key
        self.path = path
        self.reason = reason


def _stat(path: str) -> tuple[int, int, int, int, int] | None:
    try:
        st = os.stat(path)  # follows symlinks: a swapped ..data link is a new inode
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _readable(key: str, path: str) -> None:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as e:
        raise TlsFileError(key, path, f"cannot read it: {e.strerror}") from None


def load_pair(ctx: ssl.SSLContext, cert: str, key: str) -> CertInfo:
    """Load a certificate chain and its key into ``ctx``; :class:`TlsFileError` naming the file
    at fault. Returns the leaf certificate's details."""
    _readable("cert", cert)
    _readable("key", key)
    try:
        info = read_cert_info(cert)
    except ValueError as e:
        raise TlsFileError("cert", cert, f"no PEM certificate in it ({e})") from None
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as e:
        why = (
            "it is not the private key of the certificate"
            if "mismatch" in str(e)
            else (f"not a PEM private key ({e.reason or e})")
        )
        raise TlsFileError("key", key, why) from None
    return info


def load_ca(ctx: ssl.SSLContext, ca: str) -> None:
    """Trust the CA certificates of ``ca``; :class:`TlsFileError` if it holds none."""
    _readable("ca", ca)
    try:
        ctx.load_verify_locations(cafile=ca)
    except ssl.SSLError as e:
        raise TlsFileError("ca", ca, f"no PEM CA certificate in it ({e.reason or e})") from None


class TlsMaterial:
    """An ``SSLContext`` and the details of its certificate, rebuilt when its files change."""

    def __init__(
        self,
        build: Callable[[], tuple[ssl.SSLContext, CertInfo | None]],
        files: Sequence[str],
        *,
        labels: Mapping[str, str],
        cert_path: str | None = None,
        min_interval: float = FILE_CHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Build now; raises :class:`TlsFileError`. ``labels`` say whose material it is in logs
        (``{"listener": "inbound"}``, ``{"upstream": "payments"}``)."""
        self._build = build
        self.files = tuple(files)
        self.labels = dict(labels)
        self.cert_path = cert_path
        self.min_interval = min_interval
        self._clock = clock
        self._stamp = self._stamps()
        self.context, self.info = build()
        self._checked = clock()
        self._problem: str | None = None
        #: how many times new material was loaded since start-up.
        self.reloads = 0

    def _stamps(self) -> _Stamp:
        return tuple(_stat(p) for p in self.files)

    def refresh(self, *, force: bool = False) -> bool:
        """Rebuild the context if a file changed (checked at most once per ``min_interval``
        unless ``force``); whether new material is now in use."""
        now = self._clock()
        if not force and now - self._checked < self.min_interval:
            return False
        self._checked = now
        stamp = self._stamps()
        if stamp == self._stamp:
            return False
        try:
            context, info = self._build()
        except (TlsFileError, ssl.SSLError, OSError, ValueError) as e:
            # half a rotation (a new certificate, the old key) or a file being written: the old
            # material stays in use; the stamp is not taken, so the files are tried again
            reason = str(e)
            if reason != self._problem:
                self._problem = reason
                log.warning(
                    "TLS files changed but cannot be loaded: the previous certificate stays in use",
                    extra={"fields": {**self.labels, "reason": reason}},
                )
            return False
        self._stamp = stamp
        self._problem = None
        self.context, self.info = context, info
        self.reloads += 1
        fields: dict[str, object] = {**self.labels, "files": list(self.files)}
        if info is not None:
            fields.update(
                spiffe_id=info.spiffe_id,
                not_after=info.not_after.isoformat(),
                fingerprint=info.fingerprint[:16],
            )
        log.info("TLS certificate reloaded: new handshakes use it", extra={"fields": fields})
        return True

    def __repr__(self) -> str:
        return f"<TlsMaterial {self.labels} {self.files}>"
