"""Certificate expiry: the scrape-time gauge and the warnings days before (controlled clock)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sidecar.tls.certinfo import CertInfo
from sidecar.tls.certs import init_ca, issue
from sidecar.tls.expiry import CertFiles, CertificateExpiry, ExpiryWarnings, Presented

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEB = "spiffe://cluster.local/ns/shop/sa/web"


def cert(fingerprint: str, left: timedelta, spiffe_id: str | None = WEB) -> CertInfo:
    return CertInfo("CN=web", spiffe_id, 1, NOW - timedelta(days=30), NOW + left, fingerprint)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[tuple[str, dict[str, object]]]:
        return [(r.levelname, r.fields) for r in self.records]  # type: ignore[attr-defined]


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("sidecar.tls")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_a_certificate_under_seven_days_is_warned_about_once_a_day(records: Records) -> None:
    """Early enough to rotate, rarely enough not to drown the log."""
    warnings = ExpiryWarnings()
    soon = Presented(cert("aa", timedelta(days=6)), "/etc/tls.crt", listener="inbound")
    fine = Presented(cert("bb", timedelta(days=9)), "/etc/up.crt", upstream="payments")
    for hours in (0, 1, 23):
        warnings.check([soon, fine], NOW + timedelta(hours=hours))
    warnings.check([soon, fine], NOW + timedelta(hours=24))
    lines = records.lines()
    assert [level for level, _ in lines] == ["WARNING", "WARNING"]
    first = lines[0][1]
    assert first["listener"] == "inbound" and first["file"] == "/etc/tls.crt"
    assert first["spiffe_id"] == WEB and first["days_left"] == 6.0
    assert first["not_after"] == (NOW + timedelta(days=6)).isoformat()


def test_a_short_lived_certificate_warns_only_in_its_last_third(records: Records) -> None:
    """A fresh 24 h workload certificate (`sidecar certs issue`'s default) is not warned about."""
    warnings = ExpiryWarnings()
    day = CertInfo("CN=web", WEB, 1, NOW, NOW + timedelta(hours=24), "dd")
    warnings.check([Presented(day, "/t", listener="inbound")], NOW)
    warnings.check([Presented(day, "/t", listener="inbound")], NOW + timedelta(hours=15))
    assert records.lines() == []
    warnings.check([Presented(day, "/t", listener="inbound")], NOW + timedelta(hours=17))
    assert [level for level, _ in records.lines()] == ["WARNING"]


def test_an_expired_certificate_is_an_error_and_a_rotated_one_is_new(records: Records) -> None:
    """Past its end it is an error; a new certificate (new fingerprint) is judged afresh."""
    warnings = ExpiryWarnings()
    warnings.check([Presented(cert("aa", -timedelta(hours=1)), "/t", upstream="p")], NOW)
    warnings.check([Presented(cert("cc", timedelta(days=2)), "/t", upstream="p")], NOW)
    assert [(level, f["upstream"]) for level, f in records.lines()] == [
        ("ERROR", "p"),
        ("WARNING", "p"),
    ]


def test_the_gauge_is_the_time_left_at_scrape_time() -> None:
    """`sidecar_certificate_expiry_seconds`, by listener or upstream and SPIFFE ID."""
    now = [NOW]
    presented = [
        Presented(cert("aa", timedelta(days=1)), "/a", listener="inbound"),
        Presented(cert("bb", -timedelta(seconds=30), spiffe_id=None), "/b", upstream="ledger"),
    ]
    registry = CollectorRegistry()
    registry.register(CertificateExpiry(lambda: presented, clock=lambda: now[0]))
    name = "sidecar_certificate_expiry_seconds"
    inbound = {"listener": "inbound", "upstream": "", "spiffe_id": WEB}
    assert registry.get_sample_value(name, inbound) == 86400
    assert (
        registry.get_sample_value(name, {"listener": "", "upstream": "ledger", "spiffe_id": ""})
        == -30
    )
    now[0] += timedelta(hours=1)
    assert registry.get_sample_value(name, inbound) == 86400 - 3600


def test_certificate_files_are_read_again_only_when_they_change(tmp_path: Path) -> None:
    """The scrape reads a file's details once per version of it; a missing file is no value."""
    init_ca(tmp_path / "ca")
    first = issue(tmp_path / "ca", WEB, tmp_path / "web").info
    files = CertFiles()
    path = str(tmp_path / "web" / "tls.crt")
    assert files.info(path) == first
    assert files.info(path) is files.info(path)  # cached
    second = issue(tmp_path / "ca", WEB, tmp_path / "web").info
    assert files.info(path) == second
    assert files.info(str(tmp_path / "missing.crt")) is None
