"""SPIFFE IDs: parsing, allow-list patterns, and reading the ID out of a verified certificate.

A SPIFFE ID is ``spiffe://<trust domain>/<path>`` (the SPIFFE-ID standard): the trust domain is
lowercase letters, digits, ``.``, ``-`` and ``_``; the path is non-empty segments of letters,
digits, ``.``, ``-`` and ``_``, none of them ``.`` or ``..``, no trailing ``/``; no port, user,
query, fragment or percent-encoding; at most 2048 bytes. Because a valid ID has one spelling only,
comparing strings is comparing identities, and a prefix is a safe pattern.

An allow-list entry (``inbound.allow``, ``upstreams.X.tls.spiffe_id``) is an exact ID or a
``*``-suffix pattern: ``spiffe://cluster.local/ns/shop/sa/*`` allows every ID that starts with
``spiffe://cluster.local/ns/shop/sa/``. The ``*`` is a plain prefix match and may only come last,
after a complete trust domain and its ``/``; end a pattern with ``/*`` to match whole segments
(``.../ns/shop*`` also matches ``.../ns/shopping/...``).

An X.509 SVID carries its ID as its only URI subject alternative name; :func:`peer_spiffe_id`
reads it from a certificate OpenSSL already verified (``SSLObject.getpeercert()``).

Not here: certificate checks (OpenSSL's, configured in :mod:`.contexts`), or what a listener does
with an ID it did not allow.
"""

from __future__ import annotations

__all__ = ["AllowList", "SpiffeError", "parse_pattern", "parse_spiffe_id", "peer_spiffe_id"]

import re
from collections.abc import Iterable, Mapping
from typing import Any

_SCHEME = "spiffe://"
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
#: The standard's bound on an ID, in bytes (all of them ASCII here).
MAX_LENGTH = 2048
MAX_TRUST_DOMAIN = 255


class SpiffeError(ValueError):
    """Not a SPIFFE ID (or pattern); the message says why."""


def _trust_domain(rest: str, text: str) -> tuple[str, str]:
    """Split ``<trust domain>/<path>`` and check the trust domain."""
    domain, slash, path = rest.partition("/")
    if not domain:
        raise SpiffeError(f"{text!r} has no trust domain")
    if len(domain) > MAX_TRUST_DOMAIN:
        raise SpiffeError(f"the trust domain of {text!r} is over {MAX_TRUST_DOMAIN} characters")
    if not _TRUST_DOMAIN.match(domain):
        raise SpiffeError(
            f"the trust domain {domain!r} may hold only lowercase letters, digits, '.', '-' "
            f"and '_' (no port, user or upper case)"
        )
    return domain, slash + path


def _segments(path: str, text: str, *, last_may_be_partial: bool = False) -> None:
    segments = path.split("/")[1:]
    for i, seg in enumerate(segments):
        if last_may_be_partial and i == len(segments) - 1:
            if seg and not _SEGMENT.match(seg):
                raise SpiffeError(f"{text!r}: the path segment {seg!r} has a forbidden character")
            return
        if not seg:
            raise SpiffeError(f"{text!r} has an empty path segment (a '//' or a trailing '/')")
        if seg in (".", ".."):
            raise SpiffeError(f"{text!r} has a {seg!r} path segment")
        if not _SEGMENT.match(seg):
            raise SpiffeError(
                f"{text!r}: the path segment {seg!r} may hold only letters, digits, '.', '-' "
                f"and '_' (no percent-encoding, query or fragment)"
            )


def parse_spiffe_id(text: str, *, workload: bool = True) -> str:
    """``text`` if it is a valid SPIFFE ID, else :class:`SpiffeError` saying why.

    ``workload`` (the default) also requires a path: ``spiffe://td`` names a trust domain, not a
    workload.
    """
    if len(text) > MAX_LENGTH:
        raise SpiffeError(f"a SPIFFE ID is at most {MAX_LENGTH} bytes, this one is {len(text)}")
    if not text.startswith(_SCHEME):
        raise SpiffeError(f"{text!r} is not a SPIFFE ID (they start with 'spiffe://')")
    _, path = _trust_domain(text[len(_SCHEME) :], text)
    if not path:
        if workload:
            raise SpiffeError(f"{text!r} names a trust domain, not a workload (it has no path)")
        return text
    _segments(path, text)
    return text


def parse_pattern(text: str) -> str:
    """``text`` if it is a valid SPIFFE ID or ``*``-suffix pattern, else :class:`SpiffeError`."""
    if "*" not in text:
        return parse_spiffe_id(text)
    if text.count("*") > 1 or not text.endswith("*"):
        raise SpiffeError(f"{text!r}: '*' may appear once, as the last character")
    prefix = text[:-1]
    if not prefix.startswith(_SCHEME):
        raise SpiffeError(f"{text!r} is not a SPIFFE ID pattern (they start with 'spiffe://')")
    _, path = _trust_domain(prefix[len(_SCHEME) :], text)
    if not path:
        raise SpiffeError(
            f"{text!r}: the trust domain must be complete and followed by '/' before the '*' "
            f"(spiffe://example.org/*)"
        )
    _segments(path, text, last_may_be_partial=True)
    return text


class AllowList:
    """Exact IDs and ``*``-suffix patterns; :meth:`allows` costs a set lookup and one
    ``str.startswith`` over all prefixes (a single C call)."""

    __slots__ = ("exact", "patterns", "prefixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(parse_pattern(p) for p in patterns)
        self.exact = frozenset(p for p in self.patterns if not p.endswith("*"))
        self.prefixes = tuple(p[:-1] for p in self.patterns if p.endswith("*"))

    def allows(self, spiffe_id: str | None) -> bool:
        if spiffe_id is None:
            return False
        return spiffe_id in self.exact or (
            bool(self.prefixes) and spiffe_id.startswith(self.prefixes)
        )

    def __repr__(self) -> str:
        return f"AllowList({list(self.patterns)!r})"


def peer_spiffe_id(cert: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """``(id, None)`` for a verified certificate (``getpeercert()``) carrying one valid SPIFFE
    ID, else ``(None, why)``."""
    if not cert:
        return None, "the peer presented no certificate"
    uris = [value for kind, value in cert.get("subjectAltName", ()) if kind == "URI"]
    if not uris:
        return None, "the peer's certificate has no URI SAN (no SPIFFE ID)"
    if len(uris) > 1:
        return None, f"the peer's certificate has {len(uris)} URI SANs; an SVID has exactly one"
    try:
        return parse_spiffe_id(uris[0]), None
    except SpiffeError as e:
        return None, f"the peer's certificate's URI SAN is not a SPIFFE ID: {e}"
