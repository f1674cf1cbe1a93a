"""What the sidecar needs to know about a certificate: validity, SPIFFE ID, fingerprint.

Read with ``cryptography`` from PEM (the first certificate of a file is the leaf, as in
``tls.crt``). Used for the expiry metric and warnings, for the ``By=`` part of the identity
header (the sidecar's own ID) and by ``sidecar certs``. Not here: verification (OpenSSL does it
during the handshake) or issuing (:mod:`.certs`).

``cryptography`` is imported by the functions that read a certificate, not with the module: a
sidecar with no certificate in its config never loads it (about 10 MB resident).
"""

from __future__ import annotations

__all__ = ["CertInfo", "read_cert_info"]

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .spiffe import SpiffeError, parse_spiffe_id

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True, slots=True)
class CertInfo:
    """One certificate, as logs and metrics show it."""

    subject: str
    #: the single SPIFFE ID among its URI SANs, if it has one.
    spiffe_id: str | None
    serial: int
    not_before: datetime
    not_after: datetime
    #: SHA-256 of the DER encoding, hex: tells two certificates apart in logs.
    fingerprint: str

    @classmethod
    def of(cls, cert: x509.Certificate) -> CertInfo:
        from cryptography import x509  # with the first certificate read (see the module)
        from cryptography.hazmat.primitives import serialization

        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            uris = []
        spiffe_id = None
        if len(uris) == 1:
            try:
                spiffe_id = parse_spiffe_id(uris[0])
            except SpiffeError:
                pass
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(
            subject=cert.subject.rfc4514_string(),
            spiffe_id=spiffe_id,
            serial=cert.serial_number,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            fingerprint=hashlib.sha256(der).hexdigest(),
        )

    def seconds_left(self, now: datetime) -> float:
        """Seconds until it expires (negative once it has)."""
        return (self.not_after - now).total_seconds()


def read_cert_info(path: str | Path) -> CertInfo:
    """The first certificate of a PEM file; ``OSError`` or ``ValueError`` if there is none."""
    from cryptography import x509

    data = Path(path).read_bytes()
    return CertInfo.of(x509.load_pem_x509_certificate(data))
