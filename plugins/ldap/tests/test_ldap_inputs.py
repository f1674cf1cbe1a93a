"""What a caller sends, made safe with no sockets: Basic parsing, filter and DN escaping, group
names read from DNs, and the verdict cache."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from sidecar_ldap.basic import Credentials, NoCredentials, parse_basic
from sidecar_ldap.cache import Verdict, VerdictCache
from sidecar_ldap.escape import dn_value, fill, filter_value
from sidecar_ldap.names import first_rdn_value


def header(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("alice", "alice"),
        ("*", "\\2a"),
        ("*)(uid=*))(|(uid=*", "\\2a\\29\\28uid=\\2a\\29\\29\\28|\\28uid=\\2a"),
        ("admin)(|(password=*)", "admin\\29\\28|\\28password=\\2a\\29"),
        ("a\\b", "a\\5cb"),
        ("nul\x00byte", "nul\\00byte"),
        ("ümlaut", "ümlaut"),
    ],
)
def test_filter_values_are_escaped_per_rfc_4515(value: str, escaped: str) -> None:
    """Every filter metacharacter of a user name becomes a literal: no injection widens a
    search."""
    assert filter_value(value) == escaped


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("alice", "alice"),
        ("ann,ops", "ann\\,ops"),
        ('a+b;c<d>e"f\\g=h', 'a\\+b\\;c\\<d\\>e\\"f\\\\g\\=h'),
        ("#lead", "\\#lead"),
        (" lead and trail ", "\\ lead and trail\\ "),
        ("nul\x00", "nul\\00"),
    ],
)
def test_dn_values_are_escaped_per_rfc_4514(value: str, escaped: str) -> None:
    """A user name put in a DN template stays one attribute value, never another RDN."""
    assert dn_value(value) == escaped


def test_fill_replaces_each_placeholder_once() -> None:
    """A user name that contains a placeholder is not filled in again (one pass)."""
    template = "(|(member={dn})(memberUid={username}))"
    out = fill(template, {"username": "{dn}", "dn": "uid=x,dc=y"}, filter_value)
    assert out == "(|(member=uid=x,dc=y)(memberUid={dn}))"


def test_basic_credentials_are_read_strictly() -> None:
    """A well-formed header gives user and password; a password may hold colons; the scheme
    is case-insensitive."""
    assert parse_basic(header("alice:pa:ss"), 64) == Credentials("alice", "pa:ss")
    assert parse_basic("basic " + header("bob:x")[6:], 64) == Credentials("bob", "x")
    assert "pa:ss" not in repr(parse_basic(header("alice:pa:ss"), 64))


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (None, "no header"),
        ("Bearer abc", "another scheme"),
        ("Basic", "no token"),
        ("Basic !!!", "not base64"),
        ("Basic YWxpY2U", "base64 without its padding"),
        (header("alice"), "no colon"),
        (header(":pw"), "empty user name"),
        (header("alice:"), "empty password: an unauthenticated bind"),
        (header("al\x00ice:pw"), "NUL in the user name"),
        (header("al\nice:pw"), "a line break in the user name"),
        (header("alice:p\x00w"), "NUL in the password"),
        (header(b"\xff\xfe:pw"), "not UTF-8"),
        (header("a" * 65 + ":pw"), "a user name past max_username"),
        ("Basic " + "A" * 5000, "a header past 4 KiB"),
    ],
)
def test_unusable_basic_credentials_are_refused(value: str | None, why: str) -> None:
    """Anything but a well-formed Basic header with a user name and a password is refused,
    and the reason never repeats what was sent."""
    with pytest.raises(NoCredentials) as refused:
        parse_basic(value, 64)
    assert "pw" not in str(refused.value), why


@pytest.mark.parametrize(
    ("dn", "name"),
    [
        ("cn=ops,ou=groups,dc=example,dc=org", "ops"),
        ("CN=Ops Team,OU=Groups,DC=corp", "Ops Team"),
        ("cn=ops\\, night,ou=groups", "ops, night"),
        ("cn=caf\\C3\\A9,ou=groups", "café"),
        ("ou=ops,dc=example", ""),
        ("cn=a+uid=b,ou=groups", ""),
        ("garbage", ""),
    ],
)
def test_group_names_are_read_from_the_first_rdn(dn: str, name: str) -> None:
    """memberOf DNs give the group's name (its cn, unescaped); other shapes give none."""
    assert first_rdn_value(dn, "cn") == name


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_keeps_verdicts_for_their_ttl_and_refusals_shorter() -> None:
    """A granted verdict lives ttl, a refused one failure_ttl, then the directory is asked."""
    clock = Clock()
    cache = VerdictCache(60, 5, 10, clock)
    good, bad = cache.key("alice", "pw"), cache.key("alice", "wrong")
    cache.put(good, Verdict(True, "alice"))
    cache.put(bad, Verdict(False))
    clock.now = 4.9
    assert cache.get(good) == Verdict(True, "alice") and cache.get(bad) == Verdict(False)
    clock.now = 5.0
    assert cache.get(bad) is None and cache.get(good) is not None
    clock.now = 60.0
    assert cache.get(good) is None and len(cache) == 0


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    """Past max_entries the verdict used least recently goes first."""
    cache = VerdictCache(60, 5, 2)
    a, b, c = (cache.key(u, "pw") for u in "abc")
    cache.put(a, Verdict(True, "a"))
    cache.put(b, Verdict(True, "b"))
    assert cache.get(a) is not None  # a is now the most recent
    cache.put(c, Verdict(True, "c"))
    assert (cache.get(a), cache.get(b), cache.get(c)) == (
        Verdict(True, "a"),
        None,
        Verdict(True, "c"),
    )


def test_cache_keys_hold_no_password_and_are_salted() -> None:
    """A key is a salted hash: no plaintext, different per cache (per process), and user and
    password cannot be shifted into each other."""
    one, two = VerdictCache(60, 5, 10), VerdictCache(60, 5, 10)
    key = one.key("alice", "s3cret-pw")
    assert b"s3cret" not in key and len(key) == 32
    assert key != two.key("alice", "s3cret-pw")
    assert one.key("ab", "c") != one.key("a", "bc")


def test_a_zero_ttl_caches_nothing() -> None:
    """cache.ttl 0s: every call asks the directory."""
    cache = VerdictCache(0, 0, 10)
    key = cache.key("alice", "pw")
    cache.put(key, Verdict(True, "alice"))
    assert cache.get(key) is None


def test_loading_the_plugin_does_not_import_ldap3() -> None:
    """ldap3 comes in only once a url is configured: a sidecar with the plugin installed but
    unused does not pay for it."""
    code = "import sys, sidecar_ldap; print('ldap3' in sys.modules)"
    done = subprocess.run(  # noqa: S603 - this very Python
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "False", done.stderr
