"""`sidecar.tls.certs`: a CA and SPIFFE workload certificates that OpenSSL, Kubernetes and SPIFFE
verifiers accept, written so that no key is ever readable by others."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from sidecar.tls import certs
from sidecar.tls.certs import CertsError, init_ca, issue

WEB = "spiffe://cluster.local/ns/shop/sa/web"


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def ext(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that takes nothing away: whatever mode a file has, it was created with."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_ca_is_an_ecdsa_p256_ca_limited_to_signing_workloads(tmp_path: Path) -> None:
    """CA:true with pathlen 0 (no sub-CAs), keyCertSign/cRLSign, the trust domain as URI SAN."""
    made = init_ca(tmp_path / "ca", trust_domain="cluster.local")
    cert = load(tmp_path / "ca" / "ca.crt")
    assert [p.name for p in made.files] == ["ca.crt", "ca.key"]
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://cluster.local"]
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)  # self-signed, correctly


def test_keys_are_created_0600_and_certificates_0644(tmp_path: Path, open_umask: None) -> None:
    """Even with a umask of 0 a key is never readable by others, not even for a moment."""
    init_ca(tmp_path / "ca")
    issue(tmp_path / "ca", WEB, tmp_path / "web")
    assert mode(tmp_path / "ca" / "ca.key") == 0o600
    assert mode(tmp_path / "web" / "tls.key") == 0o600
    for cert in ("ca/ca.crt", "web/tls.crt", "web/ca.crt"):
        assert mode(tmp_path / cert) == 0o644
    assert mode(tmp_path / "web") == 0o700  # a new directory holding a key is private
    assert sorted(p.name for p in (tmp_path / "web").iterdir()) == ["ca.crt", "tls.crt", "tls.key"]


def test_a_ca_is_not_replaced_by_accident(tmp_path: Path) -> None:
    """Replacing a CA would distrust every certificate it issued: only with force."""
    first = init_ca(tmp_path / "ca").info.fingerprint
    with pytest.raises(CertsError, match="already holds a CA"):
        init_ca(tmp_path / "ca")
    assert init_ca(tmp_path / "ca", force=True).info.fingerprint != first


def test_a_workload_certificate_carries_its_spiffe_id_and_serves_and_calls(tmp_path: Path) -> None:
    """One URI SAN, serverAuth + clientAuth, digitalSignature, not a CA, linked to its CA."""
    init_ca(tmp_path / "ca", trust_domain="cluster.local")
    made = issue(tmp_path / "ca", WEB, tmp_path / "web", ttl=timedelta(hours=2))
    cert = load(tmp_path / "web" / "tls.crt")
    ca = load(tmp_path / "ca" / "ca.crt")
    assert made.info.spiffe_id == WEB
    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [WEB]
    assert san.get_values_for_type(x509.DNSName) == []
    eku = ext(cert, x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert not (ku.value.key_cert_sign or ku.value.key_encipherment)
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert (tmp_path / "web" / "ca.crt").read_bytes() == (tmp_path / "ca" / "ca.crt").read_bytes()
    lifetime = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(hours=2) - timedelta(minutes=1) < lifetime <= timedelta(hours=2)
    # an independent verifier (cryptography's, RFC 5280 web PKI rules) accepts the chain
    verified = PolicyBuilder().store(Store([ca])).build_client_verifier().verify(cert, [])
    assert x509.UniformResourceIdentifier(WEB) in verified.subjects


def test_dns_names_and_ip_addresses_can_be_added(tmp_path: Path) -> None:
    """For peers that check a host name (curl, browsers) beside the SPIFFE ID."""
    init_ca(tmp_path / "ca")
    issue(tmp_path / "ca", WEB, tmp_path / "web", dns_names=["web.shop"], ip_addresses=["::1"])
    san = ext(load(tmp_path / "web" / "tls.crt"), x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["web.shop"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["::1"]


def test_a_certificate_never_outlives_its_ca(tmp_path: Path) -> None:
    """It would not verify after the CA expired anyway: its validity is cut there."""
    init_ca(tmp_path / "ca", ttl=timedelta(hours=1))
    issue(tmp_path / "ca", WEB, tmp_path / "web", ttl=timedelta(days=30))
    ca, cert = load(tmp_path / "ca" / "ca.crt"), load(tmp_path / "web" / "tls.crt")
    assert cert.not_valid_after_utc == ca.not_valid_after_utc


def test_a_past_validity_makes_an_expired_certificate(tmp_path: Path) -> None:
    """Tests need expired certificates; `valid_from` gives them."""
    init_ca(tmp_path / "ca")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    made = issue(tmp_path / "ca", WEB, tmp_path / "old", valid_from=start, ttl=timedelta(days=1))
    assert made.info.not_before == start and made.info.not_after == start + timedelta(days=1)
    assert made.info.seconds_left(datetime.now(UTC)) < 0


@pytest.mark.parametrize(
    ("spiffe_id", "why"),
    [
        ("spiffe://other.domain/ns/a/sa/b", "signs for the trust domain 'cluster.local'"),
        ("spiffe://cluster.local", "names a trust domain"),
        ("cluster.local/ns/a", "not a SPIFFE ID"),
    ],
)
def test_ids_the_ca_cannot_vouch_for_are_refused(tmp_path: Path, spiffe_id: str, why: str) -> None:
    """A CA made for a trust domain issues IDs in it only, and only well-formed ones."""
    init_ca(tmp_path / "ca", trust_domain="cluster.local")
    with pytest.raises(CertsError, match=why):
        issue(tmp_path / "ca", spiffe_id, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_ca_directory_must_hold_a_matching_ca_and_key(tmp_path: Path) -> None:
    """A missing file, or a key that is not the CA's, is named."""
    with pytest.raises(CertsError, match="cannot read the CA"):
        issue(tmp_path / "nothing", WEB, tmp_path / "x")
    init_ca(tmp_path / "a")
    init_ca(tmp_path / "b")
    (tmp_path / "a" / "ca.key").write_bytes((tmp_path / "b" / "ca.key").read_bytes())
    with pytest.raises(CertsError, match="is not the key of"):
        issue(tmp_path / "a", WEB, tmp_path / "x")
    init_ca(tmp_path / "c")
    issue(tmp_path / "c", WEB, tmp_path / "leaf")
    with pytest.raises(CertsError, match="is not a CA certificate"):
        certs.load_ca(_as_ca_dir(tmp_path / "leaf"))


def _as_ca_dir(leaf: Path) -> Path:
    (leaf / "ca.crt").write_bytes((leaf / "tls.crt").read_bytes())
    (leaf / "ca.key").write_bytes((leaf / "tls.key").read_bytes())
    return leaf


def test_reissuing_replaces_files_atomically_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """Rotation in place: the new files are renamed over the old ones; no temporary files stay."""
    init_ca(tmp_path / "ca")
    first = issue(tmp_path / "ca", WEB, tmp_path / "web").info
    second = issue(tmp_path / "ca", WEB, tmp_path / "web").info
    assert first.fingerprint != second.fingerprint
    assert sorted(p.name for p in (tmp_path / "web").iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
