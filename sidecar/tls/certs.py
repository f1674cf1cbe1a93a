"""Making a CA and SPIFFE workload certificates (``sidecar certs``), with ``cryptography``.

- :func:`init_ca`: an ECDSA P-256 key and a self-signed CA certificate: ``basicConstraints``
  CA:true with ``pathlen:0`` (it signs workloads, never another CA), ``keyUsage`` keyCertSign and
  cRLSign (critical), a subject key identifier, and the trust domain's SPIFFE ID
  (``spiffe://<trust domain>``) as URI SAN when one is given, as the SPIFFE X.509 standard allows
  for signing certificates. Written as ``ca.crt`` and ``ca.key``.
- :func:`issue`: an ECDSA P-256 key and a certificate signed by that CA carrying the SPIFFE ID as
  its only URI SAN (plus DNS names and IP addresses when asked), ``basicConstraints`` CA:false,
  ``keyUsage`` digitalSignature (critical; keyEncipherment belongs to RSA key transport, which an
  EC key cannot do), ``extendedKeyUsage`` serverAuth and clientAuth (one certificate serves and
  calls), key identifiers. Written as a Kubernetes TLS Secret holds it: ``tls.crt``, ``tls.key``,
  and ``ca.crt`` (a copy of the CA certificate, the trust bundle).

Private keys are PKCS#8 PEM, unencrypted (the sidecar reads them unattended), created with mode
0600 (never a wider mode first, then a chmod). Every file is written to a temporary name and
renamed into place, so a sidecar watching the directory sees the old file or the new one, never
half of one. Not here: the command line (:mod:`.cli`) or reading certificates (:mod:`.certinfo`).
"""

from __future__ import annotations

__all__ = ["CertsError", "Issued", "init_ca", "issue", "load_ca", "write_file"]

import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .certinfo import CertInfo
from .spiffe import SpiffeError, parse_spiffe_id

#: Certificates are valid from a little before "now", for peers whose clocks are behind.
BACKDATE = timedelta(minutes=5)
CA_CERT, CA_KEY = "ca.crt", "ca.key"
TLS_CERT, TLS_KEY = "tls.crt", "tls.key"


class CertsError(Exception):
    """A certificate cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class Issued:
    """What was written: the files, and the certificate's details."""

    files: tuple[Path, ...]
    info: CertInfo


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically, the file created with ``mode`` from the start."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _out_dir(out: Path) -> None:
    # a new directory is private: it holds a key
    out.mkdir(mode=0o700, parents=True, exist_ok=True)


def init_ca(
    out: Path,
    *,
    trust_domain: str | None = None,
    ttl: timedelta = timedelta(days=365),
    force: bool = False,
    now: datetime | None = None,
) -> Issued:
    """Make a CA in ``out`` (``ca.crt``, ``ca.key``); refuses to replace one unless ``force``."""
    if trust_domain is not None:
        try:
            parse_spiffe_id(f"spiffe://{trust_domain}", workload=False)
        except SpiffeError as e:
            raise CertsError(f"not a trust domain: {e}") from None
    if ttl <= timedelta(0):
        raise CertsError("the CA's lifetime must be positive")
    _out_dir(out)
    if not force and ((out / CA_KEY).exists() or (out / CA_CERT).exists()):
        raise CertsError(
            f"{out} already holds a CA ({CA_CERT}/{CA_KEY}); every certificate it signed would "
            f"stop being trusted if it were replaced (use --force to replace it anyway)"
        )
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    label = f"sidecar CA {trust_domain}" if trust_domain else "sidecar CA"
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sidecar"),
            x509.NameAttribute(NameOID.COMMON_NAME, label[:64]),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ttl)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if trust_domain:
        san = [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    write_file(out / CA_KEY, _key_pem(key), 0o600)
    write_file(out / CA_CERT, _cert_pem(cert), 0o644)
    return Issued((out / CA_CERT, out / CA_KEY), CertInfo.of(cert))


def load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA in ``ca_dir``, checked: a CA certificate and the EC key that goes with it."""
    try:
        cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((ca_dir / CA_KEY).read_bytes(), password=None)
    except OSError as e:
        raise CertsError(f"cannot read the CA in {ca_dir}: {e.strerror}: {e.filename}") from None
    except (ValueError, TypeError) as e:
        raise CertsError(f"cannot read the CA in {ca_dir}: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertsError(f"{ca_dir / CA_KEY} is not an EC key")
    if cert.public_key() != key.public_key():
        raise CertsError(f"{ca_dir / CA_KEY} is not the key of {ca_dir / CA_CERT}")
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if not ca:
        raise CertsError(f"{ca_dir / CA_CERT} is not a CA certificate")
    return cert, key


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_trust_domain(ca: x509.Certificate) -> str | None:
    try:
        san = ca.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith("spiffe://"):
            return uri[len("spiffe://") :].partition("/")[0]
    return None


def issue(
    ca_dir: Path,
    spiffe_id: str,
    out: Path,
    *,
    ttl: timedelta = timedelta(hours=24),
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    valid_from: datetime | None = None,
) -> Issued:
    """Issue a workload certificate for ``spiffe_id`` with the CA in ``ca_dir`` into ``out``.

    It is valid from ``valid_from`` (default: now, less :data:`BACKDATE`) for ``ttl``, and never
    past the CA's own expiry (it would not verify after that anyway).
    """
    try:
        parse_spiffe_id(spiffe_id)
    except SpiffeError as e:
        raise CertsError(str(e)) from None
    if ttl <= timedelta(0):
        raise CertsError("the certificate's lifetime must be positive")
    ca_cert, ca_key = load_ca(ca_dir)
    domain = _ca_trust_domain(ca_cert)
    wanted = spiffe_id[len("spiffe://") :].partition("/")[0]
    if domain is not None and wanted != domain:
        raise CertsError(f"this CA signs for the trust domain {domain!r}, not {wanted!r}")
    san: list[x509.GeneralName] = [x509.UniformResourceIdentifier(spiffe_id)]
    san += [x509.DNSName(name) for name in dns_names]
    try:
        san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    except ValueError as e:
        raise CertsError(str(e)) from None
    now = datetime.now(UTC)
    start = now - BACKDATE if valid_from is None else valid_from
    end = min((now if valid_from is None else valid_from) + ttl, ca_cert.not_valid_after_utc)
    if end <= start:
        raise CertsError(f"the CA in {ca_dir} has expired: it cannot issue a valid certificate")
    key = ec.generate_private_key(ec.SECP256R1())
    workload = spiffe_id.rsplit("/", 1)[1]
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sidecar"),
            x509.NameAttribute(NameOID.COMMON_NAME, workload[:64]),
        ]
    )
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:  # a CA made elsewhere
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _out_dir(out)
    # a sidecar watching ``out`` may see one file changed and not yet the other: it then fails
    # to load the pair and keeps the old one until both are there (see .material)
    write_file(out / TLS_KEY, _key_pem(key), 0o600)
    write_file(out / TLS_CERT, _cert_pem(cert), 0o644)
    write_file(out / CA_CERT, _cert_pem(ca_cert), 0o644)
    return Issued((out / TLS_CERT, out / TLS_KEY, out / CA_CERT), CertInfo.of(cert))
