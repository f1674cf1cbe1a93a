"""upstreams.X.auth is validated by the provider's own model, each problem at its key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from sidecar.api import SecretRef, hookimpl
from sidecar.auth import CredentialProvider, CredentialRegistry
from sidecar.cli import main
from sidecar.config import parse_config
from sidecar.config.base import Model
from sidecar.errors import ConfigError, RegistryConflict
from sidecar.testing import isolated_plugin_host

SCHEMAS = isolated_plugin_host().schemas()
INLINE = "sup3r-inline-s3cret-value"


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDP_SECRET", "x")


def problems(auth: dict[str, object], **upstream: object) -> list[str]:
    text = yaml.safe_dump({"upstreams": {"pay": {"url": "http://p:1", "auth": auth, **upstream}}})
    try:
        parse_config(text, "sidecar.yaml", {}, schemas=SCHEMAS)
    except ConfigError as e:
        return [str(p) for p in e.problems]
    return []


OAUTH = {
    "type": "oauth2_client_credentials",
    "token_url": "https://idp/token",
    "client_id": "shop",
    "client_secret": {"env": "IDP_SECRET"},
}


def test_a_valid_auth_section_passes() -> None:
    """The documented example's shape is accepted as written."""
    assert problems({**OAUTH, "scopes": ["payments"]}) == []


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            {k: v for k, v in OAUTH.items() if k != "token_url"},
            "sidecar.yaml: upstreams.pay.auth.token_url: required key is missing",
        ),
        (
            {**OAUTH, "scope": ["a"]},
            "sidecar.yaml: upstreams.pay.auth.scope: unknown key (did you mean 'scopes'?)",
        ),
        (
            {"type": "oauth2", "token_url": "x"},
            'sidecar.yaml: upstreams.pay.auth.type: no credential provider named "oauth2" '
            "(registered: api_key, basic, bearer, hmac, oauth2_client_credentials)",
        ),
        (
            {**OAUTH, "client_auth": "jwt"},
            'sidecar.yaml: upstreams.pay.auth.client_auth: expected "basic" or "body", got "jwt"',
        ),
        (
            {**OAUTH, "refresh_at": [0.5, 0.95]},
            "sidecar.yaml: upstreams.pay.auth.refresh_at[1]: a fraction of the token's lifetime "
            "above 0 and at most 0.9, got 0.95",
        ),
        (
            {**OAUTH, "extra_params": {"grant_type": "password"}},
            "sidecar.yaml: upstreams.pay.auth.extra_params: grant_type set by the sidecar (use "
            "the keys scopes, audience, client_id, client_secret)",
        ),
        (
            {**OAUTH, "client_secret": {"env": "NOT_SET_ANYWHERE_XYZ"}},
            "sidecar.yaml: upstreams.pay.auth.client_secret: the secret {env: NOT_SET_ANYWHERE_XYZ}"
            " is missing: the variable is not set",
        ),
        (
            {"type": "api_key", "key": {"env": "IDP_SECRET"}, "header": "x-k", "query": "k"},
            "sidecar.yaml: upstreams.pay.auth: give header or query, not both",
        ),
        (
            {"type": "bearer", "token": {"env": "IDP_SECRET"}, "header": "content-length"},
            "sidecar.yaml: upstreams.pay.auth.header: the sidecar sets content-length itself; "
            "it cannot be configured",
        ),
        (
            {"type": "basic", "username": "a:b", "password": {"env": "IDP_SECRET"}},
            "sidecar.yaml: upstreams.pay.auth.username: the username contains ':', which Basic "
            "authentication cannot carry in a username",
        ),
    ],
    ids=[
        "missing",
        "typo",
        "unknown-type",
        "literal",
        "refresh-range",
        "reserved-param",
        "secret-unset",
        "api-key-two-places",
        "reserved-header",
        "basic-colon",
    ],
)
def test_auth_problems_are_reported_at_their_key_path(
    auth: dict[str, object], expected: str
) -> None:
    """A mistake in a provider's keys is named where it is, like any config problem."""
    assert problems(auth) == [expected]


@pytest.mark.parametrize("key", ["client_secret", "client_id_secret"])
def test_an_inline_secret_is_refused_without_being_repeated(key: str) -> None:
    """A secret written inline is refused, and the message does not print it back."""
    auth = dict(OAUTH)
    if key == "client_secret":
        auth["client_secret"] = INLINE
    else:
        auth = {"type": "bearer", "token": INLINE}
    found = problems(auth)
    assert found and all(INLINE not in p for p in found)
    assert "never inline" in found[0]


def test_a_token_url_with_credentials_is_refused_without_being_repeated() -> None:
    """https://user:pass@idp/token is a secret in the file: refused, not echoed."""
    found = problems({**OAUTH, "token_url": f"https://shop:{INLINE}@idp/token"})
    assert len(found) == 1 and INLINE not in found[0] and "no credentials" in found[0]


def test_request_headers_setting_the_same_header_as_auth_is_refused() -> None:
    """Two sources for Authorization would silently lose one: say so instead."""
    found = problems(
        {"type": "bearer", "token": {"env": "IDP_SECRET"}},
        request_headers={"Authorization": "Bearer x"},
    )
    assert found == [
        "sidecar.yaml: upstreams.pay.request_headers.Authorization: auth (bearer) sets "
        "authorization already: remove one of the two"
    ]


def test_every_auth_key_in_the_documented_example_is_valid() -> None:
    """docs/configuration.md's complete example is a valid auth section of its provider."""
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    example = yaml.safe_load(doc.split("```yaml\n", 1)[1].split("```", 1)[0])
    auth = example["upstreams"]["ledger"]["auth"]
    provider = isolated_plugin_host().registries.credentials["oauth2_client_credentials"]
    options = {k: v for k, v in auth.items() if k not in ("type", "pass_through")}
    settings = provider.settings_model.model_validate(options)
    assert set(settings.model_fields_set) == set(provider.settings_model.model_fields)


def test_sidecar_check_reports_auth_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sidecar check` validates auth with the loaded providers, exit 2, problem by problem."""
    path = tmp_path / "sidecar.yaml"
    bad = {**OAUTH, "token_url": "ftp://idp", "client_secret": INLINE}
    path.write_text(yaml.safe_dump({"upstreams": {"pay": {"url": "http://p:1", "auth": bad}}}))
    assert main(["check", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: upstreams.pay.auth.token_url: expected a URL like" in err
    assert f"{path}: upstreams.pay.auth.client_secret: a secret is given by reference" in err
    assert INLINE not in err


class VaultSettings(Model):
    token_path: str


class Vault(CredentialProvider):
    settings_model = VaultSettings


class VaultPlugin:
    name = "vault"

    @hookimpl
    def sidecar_register_credentials(self, registry: CredentialRegistry) -> None:
        registry.add("vault", Vault)


def test_a_plugins_provider_is_validated_with_its_own_model() -> None:
    """A third-party provider type is usable in auth.type, its keys checked by its model."""
    schemas = isolated_plugin_host(VaultPlugin()).schemas()
    text = "upstreams: {pay: {url: 'http://p:1', auth: {type: vault, token_pth: x}}}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f", {}, schemas=schemas)
    assert [str(p) for p in caught.value.problems] == [
        "f: upstreams.pay.auth.token_path: required key is missing",
        "f: upstreams.pay.auth.token_pth: unknown key (did you mean 'token_path'?)",
    ]


def test_a_provider_name_taken_twice_names_both_plugins() -> None:
    """Two plugins registering one type is refused at start-up, naming both."""

    class Clash:
        name = "clash"

        @hookimpl
        def sidecar_register_credentials(self, registry: CredentialRegistry) -> None:
            registry.add("bearer", Vault)

    with pytest.raises(RegistryConflict, match="'sidecar.auth.plugin'.*'clash'|'clash'.*'sidecar"):
        isolated_plugin_host(Clash())


def test_a_provider_without_a_settings_model_is_refused_when_registered() -> None:
    """A provider class must say what its keys are."""

    class NoModel(CredentialProvider):
        pass

    registry = CredentialRegistry()
    with pytest.raises(TypeError, match="settings_model"):
        registry.add("x", NoModel)


@pytest.mark.parametrize("inline", [INLINE, 12345, [INLINE]])
def test_the_public_secret_type_refuses_an_inline_value_without_repeating_it(inline: Any) -> None:
    """A plugin's own `SecretRef` field refuses a value written inline as the built-in
    credentials do: the message (what `sidecar check` prints) says how to give it and never
    prints the value back."""

    class PluginOptions(Model):
        api_key: SecretRef

    with pytest.raises(ValidationError) as caught:
        PluginOptions.model_validate({"api_key": inline})
    [error] = caught.value.errors()
    assert error["loc"] == ("api_key",)
    assert "never inline" in error["msg"]
    assert str(inline) not in error["msg"] and INLINE not in error["msg"]
