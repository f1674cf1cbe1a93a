"""``sidecar certs``: make a CA and SPIFFE workload certificates (mTLS listener, upstreams).

::

    sidecar certs init-ca --out ./ca [--trust-domain cluster.local] [--ttl 8760h] [--force]
    sidecar certs issue --ca ./ca --spiffe-id spiffe://cluster.local/ns/shop/sa/web --out ./web
                        [--ttl 24h] [--dns NAME]... [--ip ADDRESS]...

``init-ca`` writes ``ca.crt`` and ``ca.key``; ``issue`` writes ``tls.crt``, ``tls.key`` and
``ca.crt``, the names of a Kubernetes TLS Secret (``kubectl create secret generic web
--from-file=./web``). Keys are created with mode 0600. Exit codes: 0 done, 1 refused (the reason
on stderr), 2 bad arguments. What the certificates contain: :mod:`.certs`.
"""

from __future__ import annotations

__all__ = ["add_parser", "run"]

import argparse
import sys
from datetime import timedelta
from pathlib import Path

from ..config.types import parse_duration


def _ttl(text: str) -> timedelta:
    try:
        seconds = parse_duration(text)
    except Exception:  # pydantic's error type; argparse only needs to know it failed
        raise argparse.ArgumentTypeError(
            f"expected a duration like 24h, 90m or 8760h, got {text!r}"
        ) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("a lifetime must be more than 0")
    return timedelta(seconds=seconds)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``certs`` and its two commands to the ``sidecar`` parser."""
    certs = sub.add_parser("certs", help="make a CA and SPIFFE workload certificates (mTLS)")
    cmds = certs.add_subparsers(dest="certs_command", required=True)
    ca = cmds.add_parser("init-ca", help="make a CA: ca.crt and ca.key (ECDSA P-256)")
    ca.add_argument("--out", required=True, type=Path, help="directory to write into")
    ca.add_argument(
        "--trust-domain",
        help="the SPIFFE trust domain the CA signs for (e.g. cluster.local); "
        "issue then refuses IDs of other trust domains",
    )
    ca.add_argument("--ttl", type=_ttl, default=timedelta(days=365), help="lifetime (8760h)")
    ca.add_argument("--force", action="store_true", help="replace a CA already in --out")
    issue = cmds.add_parser(
        "issue", help="issue a workload certificate: tls.crt, tls.key and ca.crt"
    )
    issue.add_argument("--ca", required=True, type=Path, help="directory of the CA (init-ca)")
    issue.add_argument(
        "--spiffe-id", required=True, help="spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT"
    )
    issue.add_argument("--out", required=True, type=Path, help="directory to write into")
    issue.add_argument("--ttl", type=_ttl, default=timedelta(hours=24), help="lifetime (24h)")
    issue.add_argument(
        "--dns", action="append", default=[], help="a DNS name to add as SAN (repeatable)"
    )
    issue.add_argument(
        "--ip", action="append", default=[], help="an IP address to add as SAN (repeatable)"
    )


def run(args: argparse.Namespace) -> int:
    from .certs import CertsError, init_ca, issue

    try:
        if args.certs_command == "init-ca":
            made = init_ca(args.out, trust_domain=args.trust_domain, ttl=args.ttl, force=args.force)
        else:
            made = issue(
                args.ca,
                args.spiffe_id,
                args.out,
                ttl=args.ttl,
                dns_names=args.dns,
                ip_addresses=args.ip,
            )
    except CertsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 1
    info = made.info
    print(f"wrote {', '.join(str(p) for p in made.files)}")
    if info.spiffe_id:
        print(f"  SPIFFE ID   {info.spiffe_id}")
    print(f"  subject     {info.subject}")
    print(f"  valid until {info.not_after.isoformat()}")
    print(f"  sha256      {info.fingerprint}")
    return 0
