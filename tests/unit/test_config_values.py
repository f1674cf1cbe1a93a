"""How values in a config file are read: YAML, ${ENV}, durations, sizes, addresses."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_core import PydanticCustomError

from sidecar.config import parse_config
from sidecar.config.source import read_data
from sidecar.config.types import parse_address, parse_duration, parse_size, split_address
from sidecar.errors import ConfigError


def data(text: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return read_data(text, "sidecar.yaml", env or {})


def test_only_true_and_false_are_booleans() -> None:
    """`on:`, `no`, `yes` stay words (YAML 1.2), so `retry: {on: [503]}` keeps its key."""
    assert data("on: [503]\ncountry: no\nok: yes\na: true\nb: False\n") == {
        "on": [503],
        "country": "no",
        "ok": "yes",
        "a": True,
        "b": False,
    }


def test_scalar_keys_become_strings() -> None:
    """A numeric key (`200:`) is read as the string the author wrote."""
    assert data("codes: {200: ok, 1.5: x, true: y}\n") == {
        "codes": {"200": "ok", "1.5": "x", "true": "y"}
    }


def test_merge_keys_may_override_what_they_merge() -> None:
    """YAML anchors and `<<:` work for shared upstream settings; overriding is not a duplicate."""
    text = "base: &b {timeout: 2s, url: 'http://a'}\nup: {<<: *b, timeout: 5s}\n"
    assert data(text)["up"] == {"timeout": "5s", "url": "http://a"}


@pytest.mark.parametrize("text", ["", "  \n", "# upstreams: {}\n"])
def test_an_empty_file_is_refused(text: str) -> None:
    """An empty file is a mistake or a file caught mid-write far more often than a wish."""
    with pytest.raises(ConfigError) as e:
        parse_config(text, "sidecar.yaml", {})
    assert [str(p) for p in e.value.problems] == [
        "sidecar.yaml: the file is empty (nothing but blanks or comments); write `{}` to run on "
        "the defaults with no upstreams"
    ]


def test_an_explicit_empty_mapping_is_the_defaults() -> None:
    """`{}` starts a sidecar with default listeners and no upstreams."""
    config = parse_config("{}\n", "sidecar.yaml", {})
    assert config.http.address == "127.0.0.1:15001"
    assert config.upstreams == {}


def test_an_empty_section_is_its_defaults() -> None:
    """`upstreams:` with everything under it commented out is no upstreams, not an error."""
    config = parse_config("upstreams:\n#  a: {url: 'http://a'}\nroutes:\n", "sidecar.yaml", {})
    assert config.upstreams == {}
    assert config.routes == []


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${URL}", {"URL": "http://a:1"}, "http://a:1"),
        ("http://${HOST}:${PORT}/v1", {"HOST": "h", "PORT": "8"}, "http://h:8/v1"),
        ("${PORT:-8080}", {}, "8080"),
        ("${PORT:-8080}", {"PORT": ""}, "8080"),  # like a shell: empty takes the default
        ("${PORT:-8080}", {"PORT": "9"}, "9"),
        ("${EMPTY}", {"EMPTY": ""}, ""),
        ("${X:-}", {}, ""),
        ("$${NOT_A_VAR}", {}, "${NOT_A_VAR}"),
        ("cost: $5 {x}", {}, "cost: $5 {x}"),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
    ],
)
def test_env_substitution(value: str, env: dict[str, str], expected: str) -> None:
    """`${NAME}`, `${NAME:-default}` and `$${` behave as in a shell or docker compose."""
    assert data(f"v: {value!r}\n", env) == {"v": expected}


def test_substituted_values_cannot_change_the_file_structure() -> None:
    """A variable holding YAML stays a string: the environment cannot inject keys."""
    env = {"X": "a\nupstreams: {evil: {url: 'http://evil'}}"}
    assert data("http: {address: '${X}'}\n", env) == {"http": {"address": env["X"]}}


def test_keys_are_not_substituted() -> None:
    """Only values are substituted; a key is what the file says."""
    assert data("'${A}': 1\n", {"A": "b"}) == {"${A}": 1}


def test_substitution_reaches_typed_fields() -> None:
    """A number, duration or boolean may come from the environment."""
    env = {"T": "250ms", "N": "7", "ON": "false"}
    text = (
        "http: {max_headers: '${N}'}\n"
        "telemetry: {access_log: {enabled: '${ON}'}}\n"
        "upstreams: {p: {url: 'http://p', timeout: '${T}'}}\n"
    )
    config = parse_config(text, "sidecar.yaml", env)
    assert config.http.max_headers == 7
    assert config.telemetry.access_log.enabled is False
    assert config.upstreams["p"].timeout == 0.25


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("2s", 2.0),
        ("1.5m", 90.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        (" 3s ", 3.0),
        (5, 5.0),
        (0.5, 0.5),
        ("0s", 0.0),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    """Durations read like Go's and Envoy's: units required in text, bare numbers are seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["fast", "2", "2 s", "-1s", "1d", "", True, -1, None, "s"])
def test_bad_durations(text: Any) -> None:
    """Anything ambiguous (a unitless string, days, negatives) is refused."""
    with pytest.raises(PydanticCustomError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("64KiB", 65536),
        ("10MB", 10_000_000),
        ("1GiB", 1 << 30),
        ("512", 512),
        ("512B", 512),
        ("64kib", 65536),
        (1024, 1024),
    ],
)
def test_sizes(text: Any, size: int) -> None:
    """KB is 1000 and KiB 1024, as everywhere else; a bare number is bytes."""
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "1.5MB", "-1", "10 PB", True, 1.5, None])
def test_bad_sizes(text: Any) -> None:
    """Fractions, unknown units and negatives are refused."""
    with pytest.raises(PydanticCustomError):
        parse_size(text)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:15001", "localhost:0", "[::1]:15000", "payments.internal:8443", "10.0.0.1:65535"],
)
def test_addresses(address: str) -> None:
    """host:port, [v6]:port; port 0 asks the kernel for a free port."""
    assert parse_address(address) == address


@pytest.mark.parametrize(
    "address", ["localhost", ":80", "host:", "::1:80", "[nope]:80", "a b:80", "h:70000", 80]
)
def test_bad_addresses(address: Any) -> None:
    """Missing ports, unbracketed IPv6 and junk hosts are refused."""
    with pytest.raises(PydanticCustomError):
        parse_address(address)


def test_split_address_unbrackets_ipv6() -> None:
    """The listener gets a host it can bind."""
    assert split_address("[::1]:15000") == ("::1", 15000)
    assert split_address("127.0.0.1:0") == ("127.0.0.1", 0)


def test_listeners_accept_every_loopback_spelling() -> None:
    """127.x, ::1 and localhost are all "only this machine"."""
    for address in ("127.0.0.2:1", "[::1]:1", "localhost:1", "LOCALHOST:1"):
        config = parse_config(f"http: {{address: '{address}'}}\n", "sidecar.yaml", {})
        assert config.http.address == address
