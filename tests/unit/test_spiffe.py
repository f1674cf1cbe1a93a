"""SPIFFE IDs and allow-list patterns: one spelling per identity, so string checks are safe."""

from __future__ import annotations

import pytest

from sidecar.tls.spiffe import (
    AllowList,
    SpiffeError,
    parse_pattern,
    parse_spiffe_id,
    peer_spiffe_id,
)

GOOD = [
    "spiffe://cluster.local/ns/shop/sa/web",
    "spiffe://example.org/a",
    "spiffe://td_1-x.y/A.b-c_D/0",
]

BAD = [
    ("https://cluster.local/ns/shop", "start with 'spiffe://'"),
    ("SPIFFE://cluster.local/x", "start with 'spiffe://'"),
    ("spiffe:///ns/shop", "no trust domain"),
    ("spiffe://Cluster.local/x", "lowercase"),
    ("spiffe://cluster.local:8443/x", "no port"),
    ("spiffe://user@cluster.local/x", "lowercase"),
    ("spiffe://cluster.local/ns//shop", "empty path segment"),
    ("spiffe://cluster.local/ns/shop/", "empty path segment"),
    ("spiffe://cluster.local/ns/../admin", "'..' path segment"),
    ("spiffe://cluster.local/./x", "'.' path segment"),
    ("spiffe://cluster.local/ns/sh%6Fp", "percent-encoding"),
    ("spiffe://cluster.local/x?y=1", "percent-encoding, query"),
    ("spiffe://cluster.local/x#frag", "percent-encoding, query or fragment"),
    ("spiffe://cluster.local", "names a trust domain, not a workload"),
    ("spiffe://cluster.local/" + "a" * 2048, "at most 2048 bytes"),
]


@pytest.mark.parametrize("text", GOOD)
def test_valid_spiffe_ids_are_accepted_as_written(text: str) -> None:
    """Well-formed IDs pass unchanged."""
    assert parse_spiffe_id(text) == text


@pytest.mark.parametrize(("text", "why"), BAD, ids=[b[1] for b in BAD])
def test_malformed_spiffe_ids_are_refused_with_the_reason(text: str, why: str) -> None:
    """Anything with a second spelling (case, dots, escapes, ports) is not an ID."""
    with pytest.raises(SpiffeError, match=why.replace("(", r"\(").replace("?", r"\?")):
        parse_spiffe_id(text)


def test_a_trust_domain_id_is_valid_where_a_workload_is_not_required() -> None:
    """`spiffe://td` names the trust domain (a CA's own ID)."""
    assert parse_spiffe_id("spiffe://cluster.local", workload=False) == "spiffe://cluster.local"


@pytest.mark.parametrize(
    "pattern",
    [
        "spiffe://cluster.local/*",
        "spiffe://cluster.local/ns/shop/sa/*",
        "spiffe://cluster.local/ns/sh*",
        "spiffe://cluster.local/ns/shop/sa/web",
    ],
)
def test_patterns_are_exact_ids_or_a_star_after_a_complete_trust_domain(pattern: str) -> None:
    """`*` only at the end, after `spiffe://<trust domain>/`."""
    assert parse_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("*", "start with 'spiffe://'"),
        ("spiffe://*", "no trust domain"),
        ("spiffe://cluster.*", "followed by '/'"),
        ("spiffe://cluster.local*", "followed by '/'"),
        ("spiffe://cluster.local/ns/*/sa/web", "as the last character"),
        ("spiffe://cluster.local/**", "once"),
        ("spiffe://cluster.local//*", "empty path segment"),
        ("spiffe://cluster.local/../*", "'..' path segment"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, why: str) -> None:
    """A pattern that could match across trust domains, or mid-path, is refused."""
    with pytest.raises(SpiffeError, match=why.replace("*", r"\*")):
        parse_pattern(pattern)


def test_an_allow_list_matches_exact_ids_and_prefixes() -> None:
    """Exact entries match themselves only; `*` entries match what starts with their prefix."""
    allow = AllowList(
        ["spiffe://cluster.local/ns/shop/sa/*", "spiffe://cluster.local/ns/ops/sa/console"]
    )
    assert allow.allows("spiffe://cluster.local/ns/shop/sa/web")
    assert allow.allows("spiffe://cluster.local/ns/shop/sa/web/v2")
    assert allow.allows("spiffe://cluster.local/ns/ops/sa/console")
    assert not allow.allows("spiffe://cluster.local/ns/ops/sa/console2")
    assert not allow.allows("spiffe://cluster.local/ns/shop/sa")
    assert not allow.allows("spiffe://cluster.local/ns/shopping/sa/web")
    assert not allow.allows("spiffe://other.local/ns/shop/sa/web")
    assert not allow.allows(None)
    assert not AllowList([]).allows("spiffe://cluster.local/ns/shop/sa/web")


def test_a_partial_segment_pattern_is_a_plain_prefix() -> None:
    """As documented: `.../ns/shop*` also matches `.../ns/shopping/...`."""
    assert AllowList(["spiffe://cluster.local/ns/shop*"]).allows(
        "spiffe://cluster.local/ns/shopping/sa/x"
    )


def test_a_peer_certificate_must_carry_exactly_one_valid_spiffe_id() -> None:
    """The identity is the single URI SAN of the verified certificate, or there is none."""
    one = {"subjectAltName": (("DNS", "web"), ("URI", "spiffe://cluster.local/ns/a/sa/b"))}
    assert peer_spiffe_id(one) == ("spiffe://cluster.local/ns/a/sa/b", None)
    cases = [
        (None, "no certificate"),
        ({}, "no certificate"),
        ({"subjectAltName": (("DNS", "web"),)}, "no URI SAN"),
        ({"subjectAltName": (("URI", "spiffe://a/b"), ("URI", "spiffe://a/c"))}, "2 URI SANs"),
        ({"subjectAltName": (("URI", "https://a/b"),)}, "not a SPIFFE ID"),
    ]
    for cert, why in cases:
        got, problem = peer_spiffe_id(cert)
        assert got is None and problem is not None and why in problem
