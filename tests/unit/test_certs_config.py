"""The `inbound` section and `upstreams.X.tls.spiffe_id`: what is checked at load time, what a
reload can change, and how the section becomes routes to the app."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sidecar.cli import main
from sidecar.config import inbound_routes, parse_config
from sidecar.config.changes import split_changes
from sidecar.config.models import SidecarConfig
from sidecar.errors import ConfigError
from sidecar.tls.certs import init_ca, issue

BASE = {
    "address": "0.0.0.0:15006",
    "app": "127.0.0.1:8080",
    "tls": {"cert": "/etc/sidecar/tls.crt", "key": "/etc/sidecar/tls.key", "ca": "/etc/ca.crt"},
    "allow": ["spiffe://cluster.local/ns/shop/sa/*"],
}


def config(inbound: dict[str, object] | None = None, **more: object) -> SidecarConfig:
    data: dict[str, object] = dict(more)
    if inbound is not None:
        data["inbound"] = inbound
    return parse_config(yaml.safe_dump(data), "sidecar.yaml", {})


def problems(inbound: object = None, **more: object) -> list[str]:
    data: dict[str, object] = dict(more)
    if inbound is not None:
        data["inbound"] = inbound
    with pytest.raises(ConfigError) as raised:
        parse_config(yaml.safe_dump(data), "sidecar.yaml", {})
    return [str(p) for p in raised.value.problems]


def test_an_inbound_section_needs_its_app_its_files_and_its_allow_list() -> None:
    """Who may call and where the app is are never guessed."""
    assert problems({"tls": {"cert": "/c"}}) == [
        "sidecar.yaml: inbound.app: required key is missing",
        "sidecar.yaml: inbound.tls.key: required key is missing",
        "sidecar.yaml: inbound.tls.ca: required key is missing",
        "sidecar.yaml: inbound.allow: required key is missing",
    ]


def test_the_inbound_defaults() -> None:
    """0.0.0.0:15006, the XFCC header, the http listener's limits; no inbound unless configured."""
    assert config().inbound is None
    cfg = config({k: v for k, v in BASE.items() if k != "address"}).inbound
    assert cfg is not None
    assert cfg.address == "0.0.0.0:15006" and cfg.identity_header == "x-forwarded-client-cert"
    assert cfg.timeout == 15.0 and cfg.header_timeout == 10.0 and cfg.routes == []


def test_allow_lists_and_spiffe_ids_are_checked_where_they_are_written() -> None:
    """A pattern that is no SPIFFE ID is named at its key path, with the reason."""
    bad = {
        **BASE,
        "allow": ["spiffe://cluster.local/ns/*/sa/web"],
        "routes": [{"match": {"path_prefix": "/a"}, "allow": ["web"]}],
    }
    upstreams = {"p": {"url": "https://p", "tls": {"spiffe_id": "spiffe://Cluster/x"}}}
    assert problems(bad, upstreams=upstreams) == [
        "sidecar.yaml: inbound.allow[0]: 'spiffe://cluster.local/ns/*/sa/web': '*' may appear "
        "once, as the last character",
        "sidecar.yaml: inbound.routes[0].allow[0]: 'web' is not a SPIFFE ID (they start with "
        "'spiffe://')",
        "sidecar.yaml: upstreams.p.tls.spiffe_id: the trust domain 'Cluster' may hold only "
        "lowercase letters, digits, '.', '-' and '_' (no port, user or upper case)",
    ]


@pytest.mark.parametrize(
    ("routes", "why"),
    [
        ([{"match": {}, "allow": []}], "routes[0].match matches nothing"),
        (
            [
                {"name": "a", "match": {"path_prefix": "/a"}, "allow": []},
                {"name": "a", "match": {"path_prefix": "/b"}, "allow": []},
            ],
            'routes[1].name: "a" is taken (by routes[0]',
        ),
        ([{"name": "inbound", "match": {"path_prefix": "/a"}, "allow": []}], "default route"),
        ([{"name": "bad name", "match": {"path_prefix": "/a"}, "allow": []}], "a route name is"),
    ],
)
def test_inbound_routes_must_match_something_under_a_free_name(
    routes: list[object], why: str
) -> None:
    """A route that matches nothing, or two routes with one name, are mistakes."""
    (problem,) = problems({**BASE, "routes": routes})
    assert why in problem and problem.startswith("sidecar.yaml: inbound.routes")


def test_spiffe_id_needs_verification_and_the_identity_header_a_free_name() -> None:
    """An unverified SPIFFE ID proves nothing; the sidecar's own headers are not configurable."""
    upstreams = {"p": {"url": "https://p", "tls": {"spiffe_id": "spiffe://a/b", "verify": False}}}
    (spiffe,) = problems(upstreams=upstreams)
    assert "spiffe_id needs verify: true" in spiffe
    (header,) = problems({**BASE, "identity_header": "connection"})
    assert header.startswith("sidecar.yaml: inbound.identity_header: the sidecar sets connection")


def test_a_reload_changes_allow_lists_routes_and_files_but_not_the_socket() -> None:
    """Letting a service in must not need a restart; moving the port does."""
    old = config(BASE)
    new = config(
        {
            **BASE,
            "address": "0.0.0.0:16006",
            "max_headers": 50,
            "allow": ["spiffe://cluster.local/ns/ops/sa/*"],
            "tls": {**BASE["tls"], "cert": "/etc/sidecar/v2/tls.crt"},  # type: ignore[dict-item]
        }
    )
    effective, restart = split_changes(old, new)
    assert restart == ["inbound.address", "inbound.max_headers"]
    assert effective.inbound is not None and new.inbound is not None
    assert effective.inbound.address == "0.0.0.0:15006" and effective.inbound.max_headers == 100
    assert effective.inbound.allow == new.inbound.allow
    assert effective.inbound.tls == new.inbound.tls


@pytest.mark.parametrize(("before", "after"), [(None, BASE), (BASE, None)])
def test_adding_or_removing_the_inbound_listener_waits_for_a_restart(
    before: dict[str, object] | None, after: dict[str, object] | None
) -> None:
    """Its socket is opened at start-up only: the running state stays, and says why."""
    old, new = config(before), config(after)
    effective, restart = split_changes(old, new)
    assert restart == ["inbound"] and effective.inbound == old.inbound


def test_the_app_is_an_upstream_without_retries_or_breaker() -> None:
    """The calling peer's sidecar retries and judges; a second layer would multiply attempts."""
    cfg = config({**BASE, "timeout": "2s"}).inbound
    assert cfg is not None
    app = inbound_routes.app_upstream(cfg)
    assert app.url == "http://127.0.0.1:8080" and app.timeout == 2.0
    assert not app.retry.enabled and not app.circuit_breaker.enabled
    assert app.concurrency.enabled  # the app is still protected from overload
    assert inbound_routes.APP == "@app"  # a name no upstream can have


def test_inbound_routes_come_first_and_the_default_route_takes_the_rest() -> None:
    """Named in order (`inbound-<i>` unless named), then `inbound` with `inbound.allow`."""
    routes = [
        {"name": "admin", "match": {"path_prefix": "/admin"}, "allow": ["spiffe://a/ops"]},
        {"match": {"headers": {"x-tenant": "b"}}, "allow": []},
    ]
    full = config({**BASE, "routes": routes})
    assert full.inbound is not None
    specs = inbound_routes.routes(full.inbound)
    assert [(s.name, s.allow) for s in specs] == [
        ("admin", ("spiffe://a/ops",)),
        ("inbound-1", ()),
        ("inbound", ("spiffe://cluster.local/ns/shop/sa/*",)),
    ]
    assert specs[-1].match is None
    assert inbound_routes.allow_list(full, "inbound-1") == ()
    assert inbound_routes.allow_list(full, "nope") is None
    assert inbound_routes.allow_list(config(), "inbound") is None


def test_check_reads_every_certificate_file_like_run_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sidecar check` finds a key that is not the certificate's, or a missing CA, at its key."""
    init_ca(tmp_path / "ca")
    issue(tmp_path / "ca", "spiffe://cluster.local/ns/pay/sa/payments", tmp_path / "payments")
    issue(tmp_path / "ca", "spiffe://cluster.local/ns/shop/sa/web", tmp_path / "web")
    good = {
        "cert": str(tmp_path / "payments" / "tls.crt"),
        "key": str(tmp_path / "payments" / "tls.key"),
        "ca": str(tmp_path / "ca" / "ca.crt"),
    }
    data = {
        "inbound": {**BASE, "tls": {**good, "key": str(tmp_path / "web" / "tls.key")}},
        "upstreams": {
            "ok": {"url": "https://ok", "tls": good},
            "p": {"url": "https://p", "tls": {"ca": str(tmp_path / "none.crt")}},
        },
    }
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["check", "-c", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: inbound.tls.key: {tmp_path}/web/tls.key: it is not the private key of the "
        "certificate",
        f"{path}: upstreams.p.tls.ca: {tmp_path}/none.crt: cannot read it: No such file or "
        "directory",
    ]
    data["inbound"] = {**BASE, "tls": good}
    data["upstreams"] = {"ok": {"url": "https://ok", "tls": good}}
    path.write_text(yaml.safe_dump(data))
    assert main(["check", "-c", str(path)]) == 0
