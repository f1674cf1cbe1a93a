"""The request checks llhttp leaves to the sidecar: ``Host``, absolute-form targets, hop-by-hop."""

from __future__ import annotations

import pytest

from sidecar.errors import BadRequest
from sidecar.http1 import (
    HOP_BY_HOP,
    hop_by_hop_names,
    parse_absolute_target,
    split_origin_target,
    valid_host,
)


@pytest.mark.parametrize(
    "host",
    ["up", "up:8080", "payments.internal", "127.0.0.1:15001", "[::1]", "[::1]:15001", "a-b_c~d"],
)
def test_well_formed_hosts_are_accepted(host: str) -> None:
    """Names, IPv4 and bracketed IPv6 literals, each with an optional port, are valid `Host`s."""
    assert valid_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "",
        "up evil",
        "up@evil",
        "u:p@up",
        "up/x",
        "up\\x",
        "up?x",
        "up#x",
        "up:80:80",
        "[::1",
        "up:123456",
    ],
)
def test_hosts_that_parsers_disagree_on_are_refused(host: str) -> None:
    """Userinfo, paths, spaces or junk in `Host` are how Host-based routing gets tricked."""
    assert not valid_host(host)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"http://up/a/b?x=1", ("up", "/a/b", "x=1")),
        (b"http://up:8080/a", ("up", "/a", "")),
        (b"https://Up.Internal", ("Up.Internal", "/", "")),
        (b"HTTP://up/x#frag", ("up", "/x", "")),
        (b"http://[::1]:80/x", ("[::1]", "/x", "")),
    ],
)
def test_absolute_form_targets_give_authority_path_and_query(
    target: bytes, expected: tuple[str, str, str]
) -> None:
    """`GET http://up/a` routes by `up`; the fragment is dropped, the query kept as sent."""
    assert parse_absolute_target(target) == expected


@pytest.mark.parametrize(
    "target",
    [b"ftp://up/x", b"file:///etc/passwd", b"http://u:p@up/", b"http://user@up/", b"up:80"],
)
def test_absolute_form_other_schemes_and_credentials_are_refused(target: bytes) -> None:
    """The sidecar is not a forward proxy for other schemes and never carries URL credentials."""
    with pytest.raises(BadRequest):
        parse_absolute_target(target)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/a/b", ("/a/b", "")),
        ("/a?x=1&y=../%2F", ("/a", "x=1&y=../%2F")),
        ("/a?x=1#frag", ("/a", "x=1")),
        ("/a#frag?x", ("/a", "")),
        ("/a?", ("/a", "")),
    ],
)
def test_origin_form_split_leaves_the_query_untouched(
    target: str, expected: tuple[str, str]
) -> None:
    """Only the path is normalised; the query goes upstream byte for byte (fragment dropped)."""
    assert split_origin_target(target) == expected


def test_headers_named_in_connection_are_hop_by_hop_too() -> None:
    """`Connection: x-secret, Keep-Alive` makes `x-secret` hop-by-hop, besides the fixed set."""
    names = hop_by_hop_names(["x-secret, Keep-Alive", " x-other "])
    assert {"x-secret", "keep-alive", "x-other"} <= names
    assert HOP_BY_HOP <= names
    assert hop_by_hop_names([]) is HOP_BY_HOP
