"""Certificate expiry: the ``sidecar_certificate_expiry_seconds`` gauge and the warnings before it.

The certificates that matter are the ones the sidecar presents: the inbound listener's (as loaded,
:attr:`TlsMaterial.info`) and each upstream's client certificate (``upstreams.X.tls.cert``, read
from its file, re-read when the file changes). The gauge is computed when ``/metrics`` is scraped
(seconds left, negative once expired), labelled ``listener`` or ``upstream`` and the certificate's
``spiffe_id``; nothing is updated in between.

:class:`ExpiryWarnings` logs a warning when one of them has less than a third of its lifetime
left, or less than 7 days if that comes first (so a fresh 24 h workload certificate is quiet
until 8 h are left, when a rotator such as cert-manager, which renews at two thirds of the
lifetime, should already have replaced it), again at most once a day for the same certificate (a
rotated certificate is a new one), and an error once it has expired, so a broken rotation is in
the log well before calls start failing.

Not here: reloading rotated files (:mod:`.material`), the task that calls the check
(:mod:`.plugin`).
"""

from __future__ import annotations

__all__ = ["WARN_BEFORE", "CertFiles", "CertificateExpiry", "ExpiryWarnings", "Presented"]

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from .certinfo import CertInfo, read_cert_info

log = logging.getLogger("sidecar.tls")

#: A certificate with less time than this left is warned about (or less than a third of its
#: lifetime, when that is shorter).
WARN_BEFORE = timedelta(days=7)
#: ... again after this long, while it is the one in use.
WARN_AGAIN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Presented:
    """A certificate the sidecar presents, and where: ``listener`` or ``upstream`` is set."""

    info: CertInfo
    path: str
    listener: str = ""
    upstream: str = ""


class CertFiles:
    """The details of certificate files, parsed again only when ``stat`` says a file changed."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int, int, int], CertInfo]] = {}

    def info(self, path: str) -> CertInfo | None:
        """``None`` while the file is missing or holds no certificate."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        have = self._cache.get(path)
        if have is not None and have[0] == stamp:
            return have[1]
        try:
            info = read_cert_info(path)
        except (OSError, ValueError):
            return have[1] if have is not None else None
        self._cache[path] = (stamp, info)
        return info


class CertificateExpiry:
    """A Prometheus collector: seconds left of every presented certificate, at scrape time."""

    def __init__(
        self,
        presented: Callable[[], Iterable[Presented]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._presented = presented
        self._clock = clock

    def collect(self) -> Iterator[Any]:
        family = GaugeMetricFamily(
            "sidecar_certificate_expiry_seconds",
            "Seconds until the certificate the sidecar presents expires (negative: expired), "
            "by listener or upstream.",
            labels=["listener", "upstream", "spiffe_id"],
        )
        now = self._clock()
        for p in self._presented():
            family.add_metric(
                [p.listener, p.upstream, p.info.spiffe_id or ""], p.info.seconds_left(now)
            )
        yield family


class ExpiryWarnings:
    """Logs certificates that expire soon (or did): once per certificate per ``again``."""

    def __init__(self, before: timedelta = WARN_BEFORE, again: timedelta = WARN_AGAIN) -> None:
        self.before = before
        self.again = again
        #: fingerprint → when it was last warned about
        self._warned: dict[str, datetime] = {}

    def check(self, presented: Iterable[Presented], now: datetime) -> None:
        seen = set()
        for p in presented:
            info = p.info
            seen.add(info.fingerprint)
            left = info.not_after - now
            if left > min(self.before, (info.not_after - info.not_before) / 3):
                continue
            last = self._warned.get(info.fingerprint)
            if last is not None and now - last < self.again:
                continue
            self._warned[info.fingerprint] = now
            where = {"listener": p.listener} if p.listener else {"upstream": p.upstream}
            fields = {
                **where,
                "file": p.path,
                "spiffe_id": info.spiffe_id,
                "not_after": info.not_after.isoformat(),
                "days_left": round(left.total_seconds() / 86400, 2),
            }
            if left.total_seconds() <= 0:
                log.error(
                    "certificate has expired: peers refuse it; rotate it",
                    extra={"fields": fields},
                )
            else:
                log.warning(
                    "certificate expires soon: rotate it before it does",
                    extra={"fields": fields},
                )
        # certificates no longer in use are forgotten
        for fingerprint in [f for f in self._warned if f not in seen]:
            del self._warned[fingerprint]
