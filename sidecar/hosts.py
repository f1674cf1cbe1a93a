"""Which host names and ``Host`` values name the sidecar's own machine (loopback).

Two decisions read this. Config validation refuses an upstream named like one of them
(``localhost``, ``127.0.0.1``, ``0.0.0.0``...): routing by ``Host`` runs before routing by path,
and an app calling ``http://localhost:15001/payments/`` sends ``Host: localhost:15001``, so such
an upstream would capture every call. The admin and metrics ports accept a request only when its
``Host`` names an address they answer on, so a page in the user's browser that rebinds its own
DNS name to 127.0.0.1 cannot read them (:mod:`sidecar.host_guard`).

Loopback here is: ``localhost`` and every name under it (RFC 6761), ``localhost.localdomain``,
``ip6-localhost``, ``ip6-loopback`` (Debian's ``/etc/hosts``), any IP literal in 127.0.0.0/8 or
``::1``, and the unspecified addresses ``0.0.0.0`` and ``::`` (which many clients connect to as
loopback). Not here: resolving names (nothing here does I/O), what a listener binds.
"""

from __future__ import annotations

__all__ = ["is_ip_literal", "is_loopback_host", "split_host"]

import ipaddress

#: Names that resolve to loopback on any machine the sidecar runs on.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def split_host(value: str) -> tuple[str, int | None]:
    """A ``Host`` value as (host, port): ``[::1]:15000`` → (``::1``, 15000), ``Localhost`` →
    (``localhost``, None). The host is lower-cased, without brackets or a trailing dot; a port
    that is not a number makes the whole value the host (it then matches nothing)."""
    value = value.strip().lower()
    port: int | None = None
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep:
            return value, None
        if rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit():
            port = int(rest[1:])
        elif rest:
            return value, None
    elif value.count(":") == 1:
        host, _, digits = value.partition(":")
        if not (digits.isascii() and digits.isdigit()):  # "²" is a digit int() refuses
            return value, None
        port = int(digits)
    else:
        host = value  # a name, an IPv4 literal, or an unbracketed IPv6 literal (no port then)
    return host.rstrip("."), port


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` (as :func:`split_host` gives it) is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (as :func:`split_host` gives it) names this machine's loopback."""
    host = host.lower().rstrip(".")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified
