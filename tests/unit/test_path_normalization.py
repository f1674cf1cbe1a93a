"""``normalize_path``: what routing, auth and rate limits match is what the upstream will see."""

from __future__ import annotations

import pytest

from sidecar.errors import BadRequest, NoRoute
from sidecar.routing import normalize_path


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("/", "/"),
        ("/up/a/b", "/up/a/b"),
        ("/up/a/", "/up/a/"),
        ("/up/./a", "/up/a"),
        ("/up/a/./", "/up/a/"),
        ("/up/a/.", "/up/a/"),
        ("/up/a/../b", "/up/b"),
        ("/up/a/b/..", "/up/a/"),
        ("/up/../other/x", "/other/x"),
        ("/..", "/"),
        ("/../../../etc/passwd", "/etc/passwd"),
        ("/up/../../../etc/passwd", "/etc/passwd"),
        ("/up//a///b", "/up/a/b"),
        ("//up/a", "/up/a"),
        ("/up/a//", "/up/a/"),
        ("/up/.well-known/x", "/up/.well-known/x"),
        ("/up/..a/b", "/up/..a/b"),
        ("/up/a..", "/up/a.."),
    ],
)
def test_dot_segments_and_repeated_slashes_are_resolved(raw: str, normalised: str) -> None:
    """`.`/`..` are resolved (never above the root) and `//` merged, as RFC 3986 §6.2.2 says."""
    assert normalize_path(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("/up/%2e%2e/other", "/other"),
        ("/up/%2E%2E/other", "/other"),
        ("/up/.%2e/other", "/other"),
        ("/up/%2e/x", "/up/x"),
        ("/%75%70/x", "/up/x"),
        ("/up/%41%7e%2D%5f", "/up/A~-_"),
    ],
)
def test_encoded_unreserved_characters_are_decoded_before_dot_segments(
    raw: str, normalised: str
) -> None:
    """`%2e%2e` is `..`: decoding first means an encoded dot segment cannot slip past routing."""
    assert normalize_path(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("/up/%c3%a9", "/up/%C3%A9"),
        ("/up/a%20b", "/up/a%20b"),
        ("/up/%252F", "/up/%252F"),
        ("/up/%25", "/up/%25"),
        ("/up/100%", "/up/100%"),
        ("/up/%zz", "/up/%zz"),
    ],
)
def test_reserved_and_non_ascii_escapes_stay_encoded(raw: str, normalised: str) -> None:
    """Other escapes keep their meaning (hex upper-cased) and nothing is decoded twice."""
    assert normalize_path(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    [
        "/up/a%2Fb",
        "/up/a%2fb",
        "/up/..%2Fother",
        "/up/a%5Cb",
        "/up/a%5cb",
        "/up/a\\b",
        "/up\\..\\x",
    ],
)
def test_encoded_slash_or_backslash_is_no_route(raw: str) -> None:
    """An encoded `/` or a `\\` would mean another path upstream than the one routed: 404."""
    with pytest.raises(NoRoute) as e:
        normalize_path(raw)
    assert e.value.status == 404
    assert "refused" in e.value.detail


@pytest.mark.parametrize("raw", ["/up/..;/admin", "/up/.;/x", "/up/..;jsessionid=1/x", "/..;"])
def test_dot_segment_with_parameters_is_no_route(raw: str) -> None:
    """`..;` is `..` to some servers (Tomcat): refused, not routed one way and served another."""
    with pytest.raises(NoRoute):
        normalize_path(raw)


def test_encoded_nul_is_a_bad_request() -> None:
    """`%00` in a path is never legitimate: 400 and the connection closes."""
    with pytest.raises(BadRequest):
        normalize_path("/up/a%00b")


def test_a_target_that_is_not_a_path_is_refused() -> None:
    """Only origin-form paths are normalised; anything else is a bad request."""
    with pytest.raises(BadRequest):
        normalize_path("up/a")


def test_normalisation_is_idempotent() -> None:
    """Normalising twice changes nothing (a filter may normalise again safely)."""
    for raw in ["/up/%2e%2e/x/./y//z/..", "/a/%c3%a9/../b/", "/%7e/../~x"]:
        once = normalize_path(raw)
        assert normalize_path(once) == once
