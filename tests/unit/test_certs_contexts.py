"""The TLS contexts and the material behind them, driven through in-memory handshakes (no
sockets): who the inbound listener lets in, what the outbound SPIFFE check refuses, how rotated
files are taken up, and the reasons a refused handshake is logged with."""

from __future__ import annotations

import logging
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidecar.config.models import InboundTLS, UpstreamTLS
from sidecar.errors import ConfigError
from sidecar.listeners.inbound import handshake_failure
from sidecar.tls.certs import init_ca, issue
from sidecar.tls.contexts import (
    RotatingClientContext,
    SpiffeCheckedObject,
    client_context,
    server_context,
    server_material,
)
from sidecar.tls.material import TlsMaterial
from sidecar.upstream.tls import client_ssl_context

PAYMENTS = "spiffe://cluster.local/ns/pay/sa/payments"
WEB = "spiffe://cluster.local/ns/shop/sa/web"


class Dirs:
    def __init__(self, root: Path) -> None:
        self.root = root
        init_ca(root / "ca", trust_domain="cluster.local")
        issue(root / "ca", PAYMENTS, root / "payments")
        issue(root / "ca", WEB, root / "web")

    def tls(self, name: str) -> dict[str, str]:
        d = self.root / name
        return {"cert": str(d / "tls.crt"), "key": str(d / "tls.key"), "ca": str(d / "ca.crt")}


@pytest.fixture
def dirs(tmp_path: Path) -> Dirs:
    return Dirs(tmp_path)


def handshake(
    client: ssl.SSLContext, server: ssl.SSLContext, *, hostname: str | None = None
) -> tuple[Exception | None, Exception | None]:
    """Run a TLS handshake between two contexts in memory: ``(client error, server error)``."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    errors: list[Exception | None] = [None, None]
    done = [False, False]
    for _ in range(10):
        for i, (obj, out, peer_in) in enumerate(((c, c_out, s_in), (s, s_out, c_in))):
            if not done[i] and errors[i] is None:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as e:
                    errors[i] = e
            peer_in.write(out.read())
        if all(done[i] or errors[i] is not None for i in (0, 1)):
            break
    return errors[0], errors[1]


def upstream_tls(dirs: Dirs, who: str = "web", **more: object) -> UpstreamTLS:
    return UpstreamTLS.model_validate({**dirs.tls(who), **more})


def inbound_server(dirs: Dirs) -> ssl.SSLContext:
    t = dirs.tls("payments")
    return server_context(t["cert"], t["key"], t["ca"])[0]


def test_the_inbound_context_admits_a_client_certificate_from_its_ca(dirs: Dirs) -> None:
    """mTLS both ways: the client verifies the server, the server verifies the client."""
    client, _ = client_context(upstream_tls(dirs, spiffe_id=PAYMENTS))
    assert handshake(client, inbound_server(dirs)) == (None, None)


def test_inbound_refusals_are_classified_for_the_log_and_the_metric(
    dirs: Dirs, tmp_path: Path
) -> None:
    """No certificate, another CA, an expired certificate, plain HTTP: each has its reason."""
    server = inbound_server(dirs)
    ca = dirs.tls("web")["ca"]
    no_cert = ssl.create_default_context(cafile=ca)
    no_cert.check_hostname = False
    init_ca(tmp_path / "other")
    issue(tmp_path / "other", WEB, tmp_path / "impostor")
    issue(
        dirs.root / "ca",
        WEB,
        tmp_path / "expired",
        valid_from=datetime.now(UTC) - timedelta(days=2),
        ttl=timedelta(days=1),
    )
    reasons = {}
    for name, ctx in (("none", no_cert), ("impostor", None), ("expired", None)):
        if ctx is None:
            ctx = ssl.create_default_context(cafile=ca)
            ctx.check_hostname = False
            ctx.load_cert_chain(tmp_path / name / "tls.crt", tmp_path / name / "tls.key")
        _, server_error = handshake(ctx, server)
        assert server_error is not None
        reasons[name] = handshake_failure(server_error)
    assert reasons["none"] == ("no_certificate", "the peer presented no client certificate")
    assert reasons["impostor"][0] == "untrusted"
    assert "unable to get local issuer certificate" in reasons["impostor"][1]
    assert reasons["expired"] == ("expired", "client certificate refused: certificate has expired")
    plain = server.wrap_bio(incoming := ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    incoming.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(ssl.SSLError) as raised:
        plain.do_handshake()
    assert handshake_failure(raised.value)[0] == "plain_http"


def test_a_peer_refusing_our_certificate_and_lost_handshakes_are_named_too(
    dirs: Dirs, tmp_path: Path
) -> None:
    """The peer's alert, a timeout, a hang-up: the log says which."""
    init_ca(tmp_path / "other")
    stranger = ssl.create_default_context(cafile=str(tmp_path / "other" / "ca.crt"))
    stranger.check_hostname = False
    _, server_error = handshake(stranger, inbound_server(dirs))
    assert server_error is not None and handshake_failure(server_error)[0] == "peer_refused"
    timeout = ConnectionAbortedError("SSL handshake is taking longer than 10.0 seconds: aborting")
    assert handshake_failure(timeout)[0] == "timeout"
    assert handshake_failure(TimeoutError())[0] == "timeout"
    assert handshake_failure(ConnectionResetError())[0] == "closed"
    assert handshake_failure(ssl.SSLEOFError(8, "EOF occurred"))[0] == "closed"


@pytest.mark.parametrize("expected", [PAYMENTS, "spiffe://cluster.local/ns/pay/*"])
def test_the_outbound_spiffe_check_accepts_the_expected_server(dirs: Dirs, expected: str) -> None:
    """With `spiffe_id`, a workload certificate without any host name is fine."""
    client, _ = client_context(upstream_tls(dirs, spiffe_id=expected))
    assert client.check_hostname is False and client.verify_mode == ssl.CERT_REQUIRED
    assert client.sslobject_class is SpiffeCheckedObject
    assert handshake(client, inbound_server(dirs), hostname="payments.internal") == (None, None)


def test_the_outbound_spiffe_check_refuses_another_workload(dirs: Dirs) -> None:
    """A valid certificate of the wrong workload fails the handshake, naming both IDs."""
    other = "spiffe://cluster.local/ns/pay/sa/refunds"
    client, _ = client_context(upstream_tls(dirs, spiffe_id=other))
    client_error, _ = handshake(client, inbound_server(dirs))
    assert isinstance(client_error, ssl.SSLCertVerificationError)
    assert client_error.verify_message == (
        f"the upstream presented the SPIFFE ID {PAYMENTS}, expected {other}"
    )


def test_without_spiffe_id_the_host_name_is_checked(dirs: Dirs) -> None:
    """The default stays the host name check, which a SPIFFE-only certificate fails."""
    client, _ = client_context(upstream_tls(dirs))
    client_error, _ = handshake(client, inbound_server(dirs), hostname="payments.internal")
    assert isinstance(client_error, ssl.SSLCertVerificationError)
    assert "mismatch" in client_error.verify_message.lower()


def test_verify_false_turns_every_check_off(dirs: Dirs) -> None:
    """For tests only, as documented: no chain, no name, no SPIFFE check."""
    client, _ = client_context(upstream_tls(dirs, verify=False))
    assert client.verify_mode == ssl.CERT_NONE and not client.check_hostname


def test_upstream_contexts_from_files_follow_rotation(dirs: Dirs) -> None:
    """`tls.ca`/`tls.cert`/`tls.spiffe_id` give a rotating context; the system CAs a plain one."""
    assert isinstance(client_ssl_context(upstream_tls(dirs)), RotatingClientContext)
    assert isinstance(client_ssl_context(UpstreamTLS(spiffe_id=PAYMENTS)), RotatingClientContext)
    assert not isinstance(client_ssl_context(None), RotatingClientContext)
    assert not isinstance(client_ssl_context(UpstreamTLS()), RotatingClientContext)


def test_a_rotating_client_context_hands_out_the_new_certificate_after_a_change(
    dirs: Dirs,
) -> None:
    """Each new connection (`wrap_bio`) uses the material of the files as they are now."""
    rotating = RotatingClientContext(upstream_tls(dirs, spiffe_id=PAYMENTS))
    rotating.material.min_interval = 0.0
    first = rotating.material.info
    obj = rotating.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO())
    assert obj.context is rotating.material.context
    issue(dirs.root / "ca", WEB, dirs.root / "web")  # re-issued in place
    obj = rotating.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO())
    assert rotating.material.info is not None and first is not None
    assert rotating.material.info.fingerprint != first.fingerprint
    assert obj.context is rotating.material.context
    assert handshake(rotating, inbound_server(dirs)) == (None, None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def material(dirs: Dirs, clock: Clock) -> TlsMaterial:
    t = dirs.tls("payments")
    return TlsMaterial(
        lambda: server_context(t["cert"], t["key"], t["ca"]),
        (t["cert"], t["key"], t["ca"]),
        labels={"listener": "inbound"},
        clock=clock,
    )


def test_material_is_reloaded_when_its_files_change_at_most_once_a_second(dirs: Dirs) -> None:
    """A rotation is noticed on the first check a second after the last one."""
    clock = Clock()
    m = material(dirs, clock)
    before, context = m.info, m.context
    issue(dirs.root / "ca", PAYMENTS, dirs.root / "payments")
    clock.now += 0.5
    assert not m.refresh() and m.context is context  # not looked at yet
    clock.now += 0.6
    assert m.refresh() and m.context is not context
    assert m.info is not None and before is not None and m.info.fingerprint != before.fingerprint
    assert not m.refresh(force=True)  # unchanged files: nothing rebuilt
    assert m.reloads == 1


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_half_a_rotation_keeps_the_old_certificate_and_is_logged_once(dirs: Dirs) -> None:
    """A new certificate next to the old key cannot be served: the old pair stays until the
    new key arrives, and the problem is logged once however often it is seen."""
    clock = Clock()
    m = material(dirs, clock)
    context = m.context
    payments = dirs.root / "payments"
    old_key = (payments / "tls.key").read_bytes()
    issue(dirs.root / "ca", PAYMENTS, dirs.root / "next")
    (payments / "tls.crt").write_bytes((dirs.root / "next" / "tls.crt").read_bytes())
    records = Records()
    logger = logging.getLogger("sidecar.tls")
    logger.addHandler(records)
    try:
        for _ in range(3):
            clock.now += 1.1
            assert not m.refresh() and m.context is context
    finally:
        logger.removeHandler(records)
    warned = [r for r in records.records if "cannot be loaded" in r.getMessage()]
    assert len(warned) == 1
    assert "not the private key" in warned[0].fields["reason"]  # type: ignore[attr-defined]
    assert old_key != (dirs.root / "next" / "tls.key").read_bytes()
    (payments / "tls.key").write_bytes((dirs.root / "next" / "tls.key").read_bytes())
    clock.now += 1.1
    assert m.refresh() and m.context is not context


def test_unusable_inbound_files_are_config_problems_at_their_keys(dirs: Dirs) -> None:
    """Start-up stops (a reload is refused) with the key and the file at fault."""
    t = dirs.tls("payments")
    other_key = dirs.tls("web")["key"]
    garbage = dirs.root / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = [
        ({**t, "cert": str(dirs.root / "missing.crt")}, "inbound.tls.cert", "cannot read it"),
        ({**t, "cert": str(garbage)}, "inbound.tls.cert", "no PEM certificate"),
        ({**t, "key": other_key}, "inbound.tls.key", "not the private key of the certificate"),
        ({**t, "ca": str(garbage)}, "inbound.tls.ca", "no PEM CA certificate"),
    ]
    for files, key, why in cases:
        with pytest.raises(ConfigError) as raised:
            server_material(InboundTLS.model_validate(files), "sidecar.yaml")
        (problem,) = raised.value.problems
        assert problem.file == "sidecar.yaml" and problem.path == key and why in problem.reason
