"""The plugin's signatures are botocore's: the same request, keys and clock give the same
``Authorization``, for S3 and other services, odd paths and queries, bodies, session tokens."""

from __future__ import annotations

import dataclasses
import datetime
from urllib.parse import quote, quote_plus

import pytest
from reference import botocore_authorization, encoded_url
from sidecar.testing import make_exchange, provider_context

from sidecar_aws_sigv4 import AwsSigV4, Sigv4Settings

KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEBYaDH+session/token=="  # noqa: S105 - a test value
WHEN = datetime.datetime(2026, 12, 6, 22, 15, 30)
AUTHORITY = "bucket.example.com:8443"


@dataclasses.dataclass
class Case:
    name: str
    method: str = "GET"
    segments: tuple[str, ...] = ("",)
    pairs: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    service: str = "execute-api"
    token: bool = False
    unsigned: bool = False
    #: how the app encodes its query: "quote" (%20) or "plus" (form encoding, "+")
    query_style: str = "quote"


CASES = [
    Case("root GET"),
    Case("plain path", segments=("v1", "items")),
    Case("trailing slash", segments=("v1", "items", "")),
    Case("space and unicode in path", segments=("my file", "caf\u00e9", "\u65e5\u672c")),
    Case("encoded slash in a segment", segments=("keys", "a/b", "c")),
    Case("reserved characters in path", segments=("a!b*c'(d)", "e:f@g", "h=i;j,k$l+m")),
    Case("percent sign in path", segments=("100%", "%2F")),
    Case("query sorted", pairs=(("b", "2"), ("a", "1"), ("c", "3"))),
    Case("repeated keys", pairs=(("tag", "z"), ("tag", "a"), ("tag", "m"), ("id", "1"))),
    Case("special chars in query", pairs=(("q", "a b&c=d/e"), ("x", "\u00e9+~*"))),
    Case("form-encoded query", pairs=(("q", "hello world"), ("n", "a+b")), query_style="plus"),
    Case("key without value", segments=("bucket",), pairs=(("acl", None),), service="s3"),
    Case("empty value", pairs=(("prefix", ""), ("delimiter", "/"))),
    Case(
        "POST JSON",
        method="POST",
        body=b'{"a": 1}',
        headers=(
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "DynamoDB_20120810.ListTables"),
        ),
        service="dynamodb",
    ),
    Case(
        "PUT binary to S3",
        method="PUT",
        segments=("bucket", "dir", "obj.bin"),
        body=bytes(range(256)) * 3,
        service="s3",
        headers=(("content-type", "application/octet-stream"), ("x-amz-meta-owner", "  a   b  ")),
    ),
    Case(
        "S3 key with space, unicode, %2F",
        method="PUT",
        segments=("bucket", "my dir", "\u00fc/x"),
        body=b"data",
        service="s3",
    ),
    Case("S3 empty body", segments=("bucket", ""), pairs=(("list-type", "2"),), service="s3"),
    Case(
        "S3 unsigned payload",
        method="PUT",
        segments=("bucket", "big"),
        body=b"x" * 1000,
        service="s3",
        unsigned=True,
    ),
    Case("non-S3 unsigned payload", method="POST", body=b"stream", unsigned=True),
    Case("session token", token=True, segments=("v1",), pairs=(("Action", "ListUsers"),)),
    Case("S3 session token", token=True, service="s3", segments=("b", "k")),
    Case("repeated header", headers=(("x-amz-meta-a", "1"), ("x-amz-meta-a", "2"))),
    Case("DELETE", method="DELETE", segments=("queue", "msg"), service="sqs"),
    Case("dot-like segments kept", segments=("a", "..b", ".c"), service="execute-api"),
]


def _app_path(segments: tuple[str, ...]) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


def _app_query(case: Case) -> str:
    enc = quote_plus if case.query_style == "plus" else (lambda v: quote(v, safe=""))
    return "&".join(enc(k) + ("" if v is None else "=" + enc(v)) for k, v in case.pairs)


def _provider(case: Case) -> AwsSigV4:
    settings = Sigv4Settings.model_validate(
        {
            "region": "eu-west-1",
            "service": case.service,
            "access_key_id": {"env": "T_KEY_ID"},
            "secret_access_key": {"env": "T_SECRET"},
            **({"session_token": {"env": "T_TOKEN"}} if case.token else {}),
            "payload": "unsigned" if case.unsigned else "signed",
        }
    )
    wall = WHEN.replace(tzinfo=datetime.UTC).timestamp
    ctx = dataclasses.replace(provider_context("aws", "aws_sigv4", wall=wall), authority=AUTHORITY)
    return AwsSigV4(settings, ctx)


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_KEY_ID", KEY_ID)
    monkeypatch.setenv("T_SECRET", SECRET)
    monkeypatch.setenv("T_TOKEN", TOKEN)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_the_signature_is_botocores(case: Case) -> None:
    """The Authorization sent is the one botocore computes for the same request and clock."""
    provider = _provider(case)
    headers = [("user-agent", "app/1.0"), *case.headers]
    ex = make_exchange(
        case.method, _app_path(case.segments), headers, case.body, query=_app_query(case)
    )
    await provider.apply(ex)
    expected, botocore_headers = botocore_authorization(
        method=case.method,
        url=encoded_url(AUTHORITY, list(case.segments), list(case.pairs)),
        headers=[("host", AUTHORITY), *headers],
        body=case.body,
        region="eu-west-1",
        service=case.service,
        key_id=KEY_ID,
        secret=SECRET,
        token=TOKEN if case.token else None,
        when=WHEN,
        unsigned=case.unsigned,
    )
    sent = ex.headers.get("authorization")
    # botocore signs user-agent-free sets too; the plugin never signs user-agent (a proxy hop
    # may change it), and neither does botocore (its blacklist), so the two compare directly
    assert sent == expected
    for name in ("x-amz-date", "x-amz-security-token", "x-amz-content-sha256"):
        assert ex.headers.get(name) == botocore_headers.get(name), name
    # what goes on the wire is the URL botocore signed
    wire = ex.path + (f"?{ex.query}" if ex.query else "")
    assert f"http://{AUTHORITY}{wire}" == encoded_url(
        AUTHORITY, list(case.segments), list(case.pairs)
    )


async def test_a_streamed_body_is_read_and_hashed_as_botocore_hashes_it() -> None:
    """A body arriving in chunks is buffered, hashed, and sent whole with the signature."""
    case = Case("chunks", method="PUT", segments=("b", "k"), service="s3")
    provider = _provider(case)

    async def chunks():  # type: ignore[no-untyped-def]
        for part in (b"abc", b"", b"def" * 1000):
            yield part

    ex = make_exchange("PUT", "/b/k", [], chunks())
    await provider.apply(ex)
    body = b"abc" + b"def" * 1000
    assert ex.body == body
    expected, _ = botocore_authorization(
        method="PUT", url=f"http://{AUTHORITY}/b/k", headers=[("host", AUTHORITY)], body=body,
        region="eu-west-1", service="s3", key_id=KEY_ID, secret=SECRET, token=None, when=WHEN,
    )  # fmt: skip
    assert ex.headers.get("authorization") == expected
