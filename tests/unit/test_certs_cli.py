"""`sidecar certs init-ca` and `sidecar certs issue`: what an operator types, and what they get."""

from __future__ import annotations

import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sidecar.cli import main

WEB = "spiffe://cluster.local/ns/shop/sa/web"


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_init_ca_then_issue_writes_kubernetes_tls_secret_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files named as a Kubernetes TLS Secret holds them, keys 0600, and who they are printed."""
    ca, web = tmp_path / "ca", tmp_path / "web"
    assert main(["certs", "init-ca", "--out", str(ca), "--trust-domain", "cluster.local"]) == 0
    assert main(["certs", "issue", "--ca", str(ca), "--spiffe-id", WEB, "--out", str(web)]) == 0
    out = capsys.readouterr().out
    assert f"SPIFFE ID   {WEB}" in out and "valid until" in out
    assert sorted(p.name for p in ca.iterdir()) == ["ca.crt", "ca.key"]
    assert sorted(p.name for p in web.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    for key in (ca / "ca.key", web / "tls.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
    cert, ca_cert = load(web / "tls.crt"), load(ca / "ca.crt")
    cert.verify_directly_issued_by(ca_cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [WEB]
    bc = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0
    left = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(hours=23) < left <= timedelta(hours=24)  # --ttl defaults to 24h


def test_issue_takes_a_ttl_and_extra_names(tmp_path: Path) -> None:
    """`--ttl 90m`, `--dns`, `--ip`: for short-lived certificates and host-name-checking peers."""
    ca, web = tmp_path / "ca", tmp_path / "web"
    main(["certs", "init-ca", "--out", str(ca)])
    args = ["certs", "issue", "--ca", str(ca), "--spiffe-id", WEB, "--out", str(web)]
    assert main([*args, "--ttl", "90m", "--dns", "web.shop", "--ip", "127.0.0.1"]) == 0
    cert = load(web / "tls.crt")
    left = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(minutes=89) < left <= timedelta(minutes=90)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["web.shop"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_refusals_exit_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong trust domain, a missing CA, an existing CA: exit 1 and one line saying why."""
    ca, x = tmp_path / "ca", str(tmp_path / "x")
    main(["certs", "init-ca", "--out", str(ca), "--trust-domain", "cluster.local"])
    capsys.readouterr()
    cases = [
        (
            ["issue", "--ca", str(ca), "--spiffe-id", "spiffe://prod/ns/a", "--out", x],
            "signs for the trust domain 'cluster.local', not 'prod'",
        ),
        (
            ["issue", "--ca", str(tmp_path / "none"), "--spiffe-id", WEB, "--out", x],
            "cannot read the CA",
        ),
        (["init-ca", "--out", str(ca)], "use --force"),
        (["issue", "--ca", str(ca), "--spiffe-id", "web", "--out", x], "not a SPIFFE ID"),
    ]
    for args, why in cases:
        assert main(["certs", *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and why in err
    assert not Path(x).exists()


def test_a_bad_ttl_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`--ttl 1d` is not a duration the sidecar knows: argparse's exit 2, with an example."""
    with pytest.raises(SystemExit) as exit_:
        main(["certs", "init-ca", "--out", "x", "--ttl", "1d"])
    assert exit_.value.code == 2
    assert "expected a duration like 24h" in capsys.readouterr().err


def test_the_installed_command_runs_it(tmp_path: Path) -> None:
    """`sidecar certs` is wired into the console script, not only into main()."""
    exe = Path(sys.executable).with_name("sidecar")
    done = subprocess.run(  # noqa: S603
        [str(exe), "certs", "init-ca", "--out", str(tmp_path / "ca")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ca" / "ca.key").exists()
