"""The plugin's parts with no sockets: the sealed cookie, the one-use stores, the RelayState
and header rules, the config refused at its key path, and where the filter is (not) placed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from saml_world import KEY_ENV, World
from sidecar import Headers
from sidecar.testing import make_route_context, on_front

import sidecar_saml
from sidecar_saml.config import SamlConfig
from sidecar_saml.flow import header_value, safe_return_path, without_cookies
from sidecar_saml.seal import Sealer
from sidecar_saml.stores import OneUse


def test_sealed_cookie_opens_only_as_sealed() -> None:
    """A sealed value opens with its key and cookie name only, and not once expired."""
    now = [1000.0]
    sealer = Sealer("k" * 40, clock=lambda: now[0])
    value = sealer.seal("s", {"h": {"x-a": "1"}}, 60)
    assert sealer.open("s", value) == {"h": {"x-a": "1"}, "exp": 1060}
    assert sealer.open("s_req", value) is None  # sealed for another cookie
    assert Sealer("j" * 40, clock=lambda: now[0]).open("s", value) is None  # another key
    flipped = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
    assert sealer.open("s", flipped) is None
    for junk in ("", "v1.", "v1.!!!", "v2." + value[3:], "v1." + "A" * 5000):
        assert sealer.open("s", junk) is None
    now[0] = 1061.0
    assert sealer.open("s", value) is None


def test_one_use_store_is_bounded_and_takes_once() -> None:
    """A key is taken once, expires, and past the cap the oldest is forgotten."""
    now = [0.0]
    store = OneUse(2, clock=lambda: now[0])
    store.add("a", 10)
    assert store.take("a") and not store.take("a")
    store.add("b", 10)
    store.add("c", 10)
    store.add("d", 10)
    assert len(store) == 2 and not store.take("b")
    assert store.first_use("x", 5) and not store.first_use("x", 5)
    now[0] = 20.0
    assert not store.take("c")  # expired


@pytest.mark.parametrize(
    ("relay", "back"),
    [
        ("/orders?page=2", "/orders?page=2"),
        ("https://evil.test/", "/"),
        ("//evil.test", "/"),
        ("/\\evil.test", "/"),
        ("javascript:alert(1)", "/"),
        ("/a\r\nSet-Cookie: x=1", "/"),
        ("", "/"),
        ("/" + "a" * 2000, "/"),
    ],
)
def test_relay_state_is_a_path_on_this_origin(relay: str, back: str) -> None:
    """Only a same-origin path is returned to; anything else goes to ``/``."""
    assert safe_return_path(relay) == back


def test_header_values_cannot_split_a_header() -> None:
    """Values are joined; a value with a control character is not sent at all."""
    assert header_value(["a", "b"]) == "a, b"
    assert header_value(["ok\r\nx-admin: 1"]) is None
    assert header_value(["é"]) == "é".encode().decode("latin-1")


def test_the_plugins_cookies_are_removed_for_the_app() -> None:
    """The app keeps its own cookies and never sees the session's."""
    headers = Headers([("cookie", "a=1; sidecar_saml=v1.x"), ("cookie", "sidecar_saml_req=y; b=2")])
    without_cookies(headers, frozenset({"sidecar_saml", "sidecar_saml_req"}))
    assert headers.get_all("cookie") == ["a=1; b=2"]


def test_config_refusals_name_the_key_and_never_the_secret(world: World, tmp_path: Path) -> None:
    """Bad options are refused at their key path; a secret's value never appears."""
    secret = tmp_path / "short"
    secret.write_text("tooshort-secret-value")
    bad = world.section(session={"key": {"file": str(secret)}}, base_url="http://plain.test")
    with pytest.raises(ValidationError) as e:
        SamlConfig.model_validate(bad)
    text = str(e.value)
    assert "session.key" in text and "shorter than 32" in text and "tooshort" not in text
    assert "base_url" in text
    with pytest.raises(ValidationError, match="never inline"):
        SamlConfig.model_validate(
            world.section(session={"key": "inline-secret-0123456789-0123456789"})
        )
    with pytest.raises(ValidationError, match="required: session"):
        SamlConfig.model_validate({**world.section(), "session": None})
    with pytest.raises(ValidationError, match="does not describe"):
        SamlConfig.model_validate(
            world.section(idp={"entity_id": "https://x", "metadata_file": str(world.idp_metadata)})
        )


def test_the_filter_is_only_on_the_protected_front(world: World) -> None:
    """No idp, or a route of another front: the route pays nothing; the inbound front is
    protected."""
    assert sidecar_saml.make_filter(make_route_context(plugins=[sidecar_saml])) is None
    config = {"plugins": {"saml": world.section()}}
    http = make_route_context(config=config, plugins=[sidecar_saml])
    assert sidecar_saml.make_filter(http) is None
    assert sidecar_saml.make_filter(on_front(http, "inbound")) is not None


def test_sidecar_check_names_a_misspelt_option(world: World, tmp_path: Path) -> None:
    """``sidecar check`` reports a wrong option at file and key path, exit 2."""
    section = world.section()
    section["atributes"] = section.pop("attributes")
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump({"upstreams": {}, "plugins": {"saml": section}}))
    env = {**os.environ, KEY_ENV: os.environ[KEY_ENV]}
    r = subprocess.run(  # noqa: S603 - our own sidecar script, fixed arguments
        [str(Path(sys.executable).with_name("sidecar")), "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "plugins.saml.atributes" in r.stdout + r.stderr
    assert os.environ[KEY_ENV] not in r.stdout + r.stderr


def test_importing_the_plugin_loads_no_saml_library() -> None:
    """Installed but not configured, the plugin loads neither pysaml2 nor cryptography."""
    code = (
        "import sys, sidecar_saml; "
        "heavy = ('saml2', 'cryptography', 'sidecar_saml.provider'); "
        "loaded = [m for m in heavy if m in sys.modules]; "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    r = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stdout + r.stderr
