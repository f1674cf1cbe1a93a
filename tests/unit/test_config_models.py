"""The config models: documented defaults, frozen values, secrets by reference, reload splits."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest
from pydantic import BaseModel, ConfigDict

from sidecar.config import (
    PluginSchemas,
    SecretRef,
    SidecarConfig,
    cassette,
    fault,
    inbound,
    listeners,
    load_config,
    models,
    parse_config,
    policies,
    routes,
    shutdown,
    telemetry,
    upstreams,
    validate_plugin_sections,
)
from sidecar.config.changes import split_changes
from sidecar.config.models import TracingConfig
from sidecar.errors import ConfigError

SECRET = "s3cr3t-Tok3n-9f8e7d"  # distinctive: grep-able in any output


def config(text: str, env: dict[str, str] | None = None) -> SidecarConfig:
    return parse_config(text, "sidecar.yaml", env or {})


def test_defaults_are_the_documented_defaults() -> None:
    """Ports, loopback binding and bounded policies are the documented defaults with nothing set."""
    c = config("upstreams: {p: {url: 'http://p:8080'}}\n")
    assert c.admin.address == "127.0.0.1:15000"
    assert c.http.address == "127.0.0.1:15001"
    assert c.http.max_header_bytes == 60 * 1024
    assert c.http.max_headers == 100
    up = c.upstreams["p"]
    assert up.adapter == "http"
    assert up.timeout == 15.0
    assert up.pool.max_connections == 1024
    assert c.telemetry.log_level == "info"
    assert c.plugins.disabled == []


def test_config_is_frozen() -> None:
    """Request code can hold config values without them changing under it."""
    c = config("upstreams: {p: {url: 'http://p'}}\n")
    with pytest.raises(pydantic.ValidationError):
        c.upstreams["p"].timeout = 1.0  # type: ignore[misc]


def test_names_are_normalised_once_at_load() -> None:
    """Header names compare without case and prefixes without a trailing slash."""
    c = config(
        "upstreams: {p: {url: 'http://p', request_headers: {X-Api-Key: k}}}\n"
        "routes: [{match: {path_prefix: /pay/, host: API.Example.com, headers: {X-T: a}}, "
        "upstream: p}]\n"
    )
    assert c.upstreams["p"].request_headers == {"x-api-key": "k"}
    match = c.routes[0].match
    assert (match.path_prefix, match.host, match.headers) == (
        "/pay",
        "api.example.com",
        {"x-t": "a"},
    )


def test_the_embedded_default_round_trips_through_its_json_view() -> None:
    """What /config shows can be saved and loaded back as a config file."""
    default = load_config(None)
    dumped = json.dumps(default.model_dump(mode="json"))
    assert parse_config(dumped, "dump.json", {}) == default


def test_secret_references_dump_as_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/config shows `{env: NAME}` or `{file: PATH}`, never what they hold."""
    monkeypatch.setenv("KEY", SECRET)
    secret_file = tmp_path / "token"
    secret_file.write_text(SECRET + "\n")
    c = config(
        "upstreams: {p: {url: 'http://p', request_headers: {"
        f"authorization: {{file: '{secret_file}'}}, x-key: {{env: KEY}}, x-plain: visible}}}}}}\n"
    )
    dumped = c.model_dump(mode="json")
    assert dumped["upstreams"]["p"]["request_headers"] == {
        "authorization": {"file": str(secret_file)},
        "x-key": {"env": "KEY"},
        "x-plain": "visible",
    }
    assert SECRET not in json.dumps(dumped)
    assert SECRET not in repr(c)
    assert SECRET not in str(c)


def test_reveal_reads_the_current_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file secret loses its trailing newline; an env secret is taken as is."""
    path = tmp_path / "s"
    path.write_text(f"  {SECRET}\n")
    assert SecretRef(file=str(path)).reveal() == SECRET
    monkeypatch.setenv("SIDECAR_TEST_SECRET", SECRET)
    assert SecretRef(env="SIDECAR_TEST_SECRET").reveal() == SECRET


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (f"{SECRET}\nx-injected: 1", "contains a control or non-latin-1 character"),
        (f"{SECRET}\r\n\r\nGET /admin", "contains a control or non-latin-1 character"),
        (f"{SECRET}\x00", "contains a control or non-latin-1 character"),
        (f"{SECRET}\u2603", "contains a control or non-latin-1 character"),
        ("\n\n", "is empty"),
    ],
)
def test_an_unusable_secret_is_refused_without_showing_it(
    tmp_path: Path, content: str, reason: str
) -> None:
    """A secret that would split the request head is refused by reference, never echoed."""
    path = tmp_path / "token"
    path.write_text(content)
    headers = f"{{authorization: {{file: '{path}'}}}}"
    text = f"upstreams: {{p: {{url: 'http://p', request_headers: {headers}}}}}\n"
    with pytest.raises(ConfigError) as info:
        config(text)
    message = str(info.value)
    assert message.startswith(
        f"sidecar.yaml: upstreams.p.request_headers.authorization: the secret {{file: {path}}} "
    )
    assert reason in message
    assert SECRET not in message


def test_an_unreadable_secret_file_names_only_the_reference(tmp_path: Path) -> None:
    """A secret file that is a directory (a mount gone wrong) is a clear config problem."""
    text = (
        f"upstreams: {{p: {{url: 'http://p', request_headers: {{x-a: {{file: '{tmp_path}'}}}}}}}}\n"
    )
    with pytest.raises(ConfigError) as info:
        config(text)
    assert str(info.value) == (
        f"sidecar.yaml: upstreams.p.request_headers.x-a: the secret {{file: {tmp_path}}} "
        "cannot be read: Is a directory"
    )


def test_secrets_need_not_resolve_when_asked_not_to() -> None:
    """Tools that only look at the shape (no secrets mounted) can skip reading them."""
    text = "upstreams: {p: {url: 'http://p', request_headers: {x-a: {env: SIDECAR_TEST_NOPE}}}}\n"
    c = parse_config(text, "sidecar.yaml", {}, resolve_secrets=False)
    assert str(c.upstreams["p"].request_headers["x-a"]) == "{env: SIDECAR_TEST_NOPE}"


def test_url_credentials_are_refused_without_repeating_them() -> None:
    """`http://user:pass@host` is a secret inline; the error does not copy it into logs."""
    with pytest.raises(ConfigError) as info:
        config(f"upstreams: {{p: {{url: 'http://svc:{SECRET}@p:80'}}}}\n")
    assert SECRET not in str(info.value)
    assert "upstreams.p.url: an upstream URL carries no credentials" in str(info.value)


class Demo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: int = 3
    token: SecretRef | None = None


def test_plugin_sections_are_validated_with_defaults_when_absent() -> None:
    """A plugin always receives its validated model, its defaults when the file has no section."""
    c = config("plugins: {disabled: [x]}\n")
    sections = validate_plugin_sections(
        c, PluginSchemas({"demo": Demo}, {"http": None, "echo": None}), "f"
    )
    assert sections == {"demo": Demo()}


def test_secrets_in_plugin_sections_are_checked_too() -> None:
    """A plugin that takes a secret reference gets the same start-up check as request_headers."""
    text = "plugins: {demo: {token: {env: SIDECAR_TEST_NOPE}}}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "sidecar.yaml", {}, schemas=PluginSchemas({"demo": Demo}, {}))
    assert str(info.value) == (
        "sidecar.yaml: plugins.demo.token: the secret {env: SIDECAR_TEST_NOPE} is missing: "
        "the variable is not set"
    )


BASE = "upstreams: {p: {url: 'http://p'}}\n"


def test_reload_keeps_restart_only_keys_and_names_them() -> None:
    """A reload cannot move a listener: the change is named and the running value kept."""
    old = config(BASE)
    new = config(
        BASE + "http: {address: '127.0.0.1:25001', max_headers: 50}\n"
        "admin: {address: '127.0.0.1:25000'}\n"
        "telemetry: {log_level: debug, access_log: {sample_ratio: 0.5}}\n"
        "plugins: {disabled: [foo]}\n"
    )
    effective, restart = split_changes(old, new)
    assert restart == [
        "admin.address",
        "http.address",
        "http.max_headers",
        "telemetry.log_level",
        "plugins.disabled",
    ]
    assert effective.http == old.http
    assert effective.admin == old.admin
    assert effective.telemetry.log_level == "info"
    assert effective.plugins.disabled == []
    # what a reload can change, it does
    assert effective.telemetry.access_log.sample_ratio == 0.5


def test_reload_of_reloadable_keys_needs_no_restart() -> None:
    """Upstreams, routes and plugin sections change without a restart."""
    old = config(BASE + "plugins: {demo: {a: 1}}\n")
    new = config(
        "upstreams: {q: {url: 'http://q', timeout: 2s}}\n"
        "routes: [{match: {path_prefix: /x}, upstream: q}]\nplugins: {demo: {a: 2}}\n"
    )
    effective, restart = split_changes(old, new)
    assert restart == []
    assert effective == new


def _documented_example() -> str:
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    return doc.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_documented_complete_example_is_valid_and_sets_every_key() -> None:
    """docs/configuration.md's example is a real config and leaves no key undocumented."""
    example = parse_config(_documented_example(), "example", {}, resolve_secrets=False)
    written: dict[type[BaseModel], set[str]] = {}

    def collect(obj: object) -> None:
        if isinstance(obj, BaseModel) and not isinstance(obj, SecretRef):
            written.setdefault(type(obj), set()).update(obj.model_fields_set)
            for name in type(obj).model_fields:
                collect(getattr(obj, name))
        elif isinstance(obj, dict):
            for value in obj.values():
                collect(value)
        elif isinstance(obj, list):
            for value in obj:
                collect(value)

    collect(example)
    missing = {
        f"{model.__name__}.{name}"
        for model, names in written.items()
        for name in model.model_fields
        if name not in names
    }
    assert missing == set()
    sections = {
        cls
        for module in (
            models,
            listeners,
            inbound,
            upstreams,
            routes,
            telemetry,
            shutdown,
            policies,
            cassette,
            fault,
        )
        for cls in vars(module).values()
        if isinstance(cls, type)
        and issubclass(cls, BaseModel)
        and cls.__module__ == module.__name__
    }
    assert set(written) == sections  # every section of the file appears in the example


def test_the_documented_defaults_are_the_real_defaults() -> None:
    """Where the example shows a default, it is the value the sidecar uses when it is left out."""
    example = parse_config(_documented_example(), "example", {}, resolve_secrets=False)
    defaults = parse_config("upstreams: {payments: {url: 'http://p'}}\n", "d", {})
    for section in ("admin", "http", "grpc", "shutdown"):
        assert getattr(example, section) == getattr(defaults, section), section
    # tracing is off by default: the example turns it on, with defaults except where it points
    assert example.telemetry.model_copy(update={"tracing": None}) == defaults.telemetry
    assert defaults.telemetry.tracing is None and example.telemetry.tracing is not None
    shown_tracing = example.telemetry.tracing.model_copy(
        update={"protocol": None, "endpoint": None, "sample_ratio": None}
    )
    assert shown_tracing == TracingConfig()
    shown, default = example.upstreams["payments"], defaults.upstreams["payments"]
    for key in (
        "timeout",
        "connect_timeout",
        "response_header_timeout",
        "host",
        "pool",
        "retry",
        "circuit_breaker",
        "concurrency",
    ):
        assert getattr(shown, key) == getattr(default, key), key
