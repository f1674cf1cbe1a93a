"""Keys and certificates the tests make once a session: the IdP's signing pair (RSA, as SAML
signers use) and a private CA with the inbound listener's certificate and a browser-facing
gateway's client certificate (the inbound front is mTLS: its callers present one)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

#: the SPIFFE ID of the test's "gateway", the peer the browser's calls come through
GATEWAY_ID = "spiffe://cluster.local/ns/edge/sa/gateway"


@dataclass(frozen=True)
class Pki:
    idp_key: Path
    idp_cert: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )


def _cert(
    subject: str,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None = None,
    issuer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    *,
    ca: bool = False,
    san: x509.GeneralName | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer or _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def issue(directory: Path) -> Pki:
    """Every key and certificate the tests need, written under ``directory``."""
    d = directory
    pki = Pki(
        *(
            d / n
            for n in ("idp.key", "idp.pem", "ca.pem", "srv.pem", "srv.key", "cli.pem", "cli.key")
        )
    )
    idp_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.idp_key, idp_key)
    _write_cert(pki.idp_cert, _cert("test idp", idp_key))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("saml test CA", ca_key, ca=True)
    _write_cert(pki.ca, ca)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    _write_key(pki.server_key, srv_key)
    ip = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    _write_cert(pki.server_cert, _cert("127.0.0.1", srv_key, ca.subject, ca_key, san=ip))
    cli_key = ec.generate_private_key(ec.SECP256R1())
    _write_key(pki.client_key, cli_key)
    uri = x509.UniformResourceIdentifier(GATEWAY_ID)
    _write_cert(pki.client_cert, _cert("gateway", cli_key, ca.subject, ca_key, san=uri))
    return pki
