"""The provider with no sockets: settings refused, key sources, the signing-key cache, the
container endpoint's answers, and what never shows a secret."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError
from sidecar import AuthConfigProblem, CredentialsUnavailable
from sidecar.testing import isolated_plugin_host, make_exchange, provider_context

import sidecar_aws_sigv4 as plugin
from sidecar_aws_sigv4 import AwsSigV4, Sigv4Settings
from sidecar_aws_sigv4.signing import SigningKeys, signing_key, wire_path, wire_query
from sidecar_aws_sigv4.sources import container_endpoint, parse_container_answer

SECRET = "unit/secret+value=0123456789"  # noqa: S105 - a test value
TOKEN = "unit-session-token"  # noqa: S105 - a test value
BASE = {"region": "us-east-1", "service": "s3"}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("U_KEY_ID", "AKIAUNIT")
    monkeypatch.setenv("U_SECRET", SECRET)
    monkeypatch.setenv("U_TOKEN", TOKEN)


def _settings(**more: Any) -> Sigv4Settings:
    keys = {"access_key_id": {"env": "U_KEY_ID"}, "secret_access_key": {"env": "U_SECRET"}}
    return Sigv4Settings.model_validate({**BASE, **keys, **more})


def _provider(settings: Sigv4Settings, **context: Any) -> AwsSigV4:
    ctx = provider_context("u", "aws_sigv4", wall=lambda: 1765000000.0)
    return AwsSigV4(settings, dataclasses.replace(ctx, **{"authority": "h:1", **context}))


def test_the_plugin_registers_the_aws_sigv4_type() -> None:
    """Installed, the plugin offers ``auth: {type: aws_sigv4}``."""
    host = isolated_plugin_host(plugin)
    assert host.registries.credentials["aws_sigv4"] is AwsSigV4


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"access_key_id": {"env": "A"}}, "given together"),
        ({"session_token": {"env": "T"}}, "needs access_key_id"),
        ({"source": "keys"}, "source keys needs"),
        ({"source": "container", "access_key_id": {"env": "A"},
          "secret_access_key": {"env": "B"}}, "reads its own keys"),
        ({"sign_headers": ["User-Agent"]}, "lower-case header name"),
        ({"sign_headers": ["x-forwarded-for"]}, "cannot be signed"),
        ({"sign_headers": ["bad header"]}, "lower-case header name"),
        ({"payload": "chunked"}, "Input should be"),
        ({"max_body": "1GiB"}, "less than or equal"),
        ({"region": "us-east-1\nx"}, "should match pattern"),
    ],
)  # fmt: skip
def test_inconsistent_settings_are_refused(settings: dict[str, Any], reason: str) -> None:
    """Settings that cannot work are refused when the config is read, saying why."""
    with pytest.raises(ValidationError, match=reason):
        Sigv4Settings.model_validate({**BASE, **settings})


def test_an_inline_secret_is_refused_without_repeating_it() -> None:
    """A key written in the file instead of by reference is refused, and not echoed."""
    with pytest.raises(ValidationError) as info:
        _settings(secret_access_key="wJalrInlineSecret")  # noqa: S106 - a test value
    [error] = info.value.errors()
    assert error["loc"] == ("secret_access_key",)
    assert "by reference" in error["msg"] and "wJalrInlineSecret" not in error["msg"]


def test_env_is_the_default_source_with_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no keys given, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN sign."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    provider = _provider(Sigv4Settings.model_validate(BASE))
    ex = make_exchange("GET", "/b/k")
    provider.sign(ex, provider._source.now(), "UNSIGNED-PAYLOAD")  # type: ignore[union-attr]
    assert "Credential=AKIAFROMENV/" in (ex.headers.get("authorization") or "")
    assert ex.headers.get("x-amz-security-token") == TOKEN
    assert provider.describe()["source"] == "env"


def test_a_missing_environment_variable_stops_start_up_at_its_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unset AWS_ACCESS_KEY_ID is reported at ``auth.access_key_id``, naming the variable."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    with pytest.raises(AuthConfigProblem) as info:
        _provider(Sigv4Settings.model_validate(BASE))
    assert info.value.key_path == "auth.access_key_id"
    assert "AWS_ACCESS_KEY_ID" in str(info.value)


def test_the_signing_key_cache_is_bounded_and_keyed_by_day_and_secret() -> None:
    """Derived keys are reused within a day, and at most four are ever held."""
    keys = SigningKeys(size=4)
    first = keys.get("s", "20261206", "us-east-1", "s3")
    assert keys.get("s", "20261206", "us-east-1", "s3") is first
    assert first == signing_key("s", "20261206", "us-east-1", "s3")
    for day in range(10):
        keys.get("s", f"202612{day:02}", "us-east-1", "s3")
    assert len(keys) == 4
    assert keys.get("t", "20261206", "us-east-1", "s3") != first


def test_the_aws_documented_signing_key() -> None:
    """The signing key of AWS's documented example (the IAM example's key and scope)."""
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


@pytest.mark.parametrize(
    ("raw", "wire"),
    [
        ("/a b/%7e%41", "/a%20b/~A"),
        ("/%2f/x", "/%2F/x"),
        ("/caf\u00c3\u00a9", "/caf%C3%A9"),  # raw UTF-8 bytes as a front decodes them (latin-1)
        ("/%ff%00", "/%FF%00"),
    ],
)
def test_paths_are_sent_in_aws_encoding(raw: str, wire: str) -> None:
    """Every byte but the unreserved ones is percent-encoded, upper-case, never twice."""
    assert wire_path(raw) == wire
    assert wire_path(wire) == wire


def test_queries_are_sent_in_aws_encoding() -> None:
    """``+`` is a space, empty pairs go, a key alone stays alone, escapes are upper-case."""
    assert wire_query("q=a+b&&acl&x=%2f%7E&y=a=b") == "q=a%20b&acl&x=%2F~&y=a%3Db"


async def test_the_apps_credentials_are_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """An app's Authorization, Date and session token never reach the upstream beside ours."""
    provider = _provider(_settings())
    ex = make_exchange(
        "GET",
        "/b",
        [("authorization", "AWS4-HMAC-SHA256 forged"), ("date", "Mon"),
         ("x-amz-security-token", "other"), ("x-amz-date", "19990101T000000Z")],
    )  # fmt: skip
    await provider.apply(ex)
    assert len(ex.headers.get_all("authorization")) == 1
    assert "forged" not in (ex.headers.get("authorization") or "")
    assert "date" not in ex.headers and "x-amz-security-token" not in ex.headers
    assert ex.headers.get_all("x-amz-date") == ["20251206T054640Z"]


async def test_a_large_body_is_refused_before_it_is_read() -> None:
    """A declared body over ``max_body`` is refused (413) without reading a byte of it."""
    provider = _provider(_settings(max_body=10))
    read = []

    async def body():  # type: ignore[no-untyped-def]
        read.append(1)
        yield b"x" * 100

    ex = make_exchange("PUT", "/b/k", [], body())
    ex.body_length = 100
    with pytest.raises(plugin.BodyTooLargeToSign) as info:
        await provider.apply(ex)
    assert info.value.status == 413 and read == []
    assert "auth.max_body" in info.value.detail


def test_an_upstream_path_not_in_aws_encoding_is_refused() -> None:
    """A base path the signature could not match (``/a b``) stops start-up, saying why."""
    with pytest.raises(AuthConfigProblem, match="percent-encoded"):
        _provider(_settings(), base_path="/my base")


def test_grpc_upstreams_are_refused_and_authorization_is_the_header() -> None:
    """gRPC calls cannot be signed (a stream of messages); ``pass_through`` looks at
    Authorization."""
    assert AwsSigV4.grpc_refusal(_settings()) is not None
    assert AwsSigV4.header_of(_settings()) == "authorization"


def test_both_credentials_are_marked_for_adapters_that_show_requests() -> None:
    """On an ``echo`` route the app sees that Authorization and the token were set, not them."""
    marks = _provider(_settings()).injected()
    assert set(marks.headers) == {"authorization", "x-amz-security-token"}


def test_describe_and_repr_show_no_secret() -> None:
    """``/upstreams`` and any repr of the keys hold no secret value."""
    provider = _provider(_settings(session_token={"env": "U_TOKEN"}))
    keys = provider._source.now()  # type: ignore[union-attr]
    shown = f"{provider.describe()!r} {keys!r}"
    assert SECRET not in shown and TOKEN not in shown and "AKIAUNIT" in repr(keys)


@pytest.mark.parametrize(
    ("env", "ok"),
    [
        ({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/creds/x"}, True),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/c"}, True),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1"}, True),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "https://creds.example.com/c"}, True),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://evil.example.com/c"}, False),
        ({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "file:///etc/passwd"}, False),
        ({}, False),
    ],
)
def test_the_container_endpoint_is_only_a_safe_address(env: dict[str, str], ok: bool) -> None:
    """Keys are fetched over https, or plain http only to loopback or the ECS/EKS agent."""
    if ok:
        assert container_endpoint(env).startswith(("http://", "https://"))
    else:
        with pytest.raises(AuthConfigProblem) as info:
            container_endpoint(env)
        assert info.value.key_path == "auth.source"


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"{}",
        b'{"AccessKeyId": "A", "SecretAccessKey": 5}',
        b'{"AccessKeyId": "", "SecretAccessKey": "s"}',
        b'{"AccessKeyId": "A", "SecretAccessKey": "leak-me", "Expiration": "soon"}',
        b"x" * 70000,
    ],
)
def test_a_malformed_endpoint_answer_is_unavailable_without_echo(raw: bytes) -> None:
    """A bad answer from the credentials endpoint is 503 material, never repeated."""
    with pytest.raises(CredentialsUnavailable) as info:
        parse_container_answer(raw, "the endpoint")
    assert "leak-me" not in info.value.detail


def test_an_endpoint_answer_gives_keys_and_their_expiry() -> None:
    """The ECS answer's keys, token and Expiration are read."""
    raw = (
        b'{"AccessKeyId": "ASIA1", "SecretAccessKey": "s", "Token": "t",'
        b' "Expiration": "2026-12-06T23:00:00Z"}'
    )
    keys = parse_container_answer(raw, "x")
    assert (keys.access_key_id, keys.session_token, keys.expires) == ("ASIA1", "t", 1796598000.0)
