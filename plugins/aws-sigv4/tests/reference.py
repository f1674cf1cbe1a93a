"""botocore, the reference signer: the ``Authorization`` it computes for a request as sent.

The tests compare the plugin's signatures with this, and the integration tests' upstream
verifies received requests with it (:func:`verify_received`), as AWS would: it rebuilds the
canonical request from what arrived, using the headers the ``Authorization`` names.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from types import SimpleNamespace
from unittest import mock

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

S3 = frozenset({"s3", "s3-object-lambda", "s3-outposts"})
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key_id>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


def encoded_url(authority: str, segments: list[str], pairs: list[tuple[str, str | None]]) -> str:
    """The URL of decoded path segments and query pairs, encoded by botocore's own encoder."""
    path = "/" + "/".join(percent_encode(s, safe="-_.~") for s in segments)
    query = "&".join(
        percent_encode(k, safe="-_.~") + ("" if v is None else "=" + percent_encode(v, safe="-_.~"))
        for k, v in pairs
    )
    return f"http://{authority}{path}" + (f"?{query}" if query else "")


def botocore_authorization(
    *,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    region: str,
    service: str,
    key_id: str,
    secret: str,
    token: str | None,
    when: datetime.datetime,
    unsigned: bool = False,
) -> tuple[str, dict[str, str]]:
    """botocore's ``Authorization`` (and the headers it set) for this request at ``when``."""
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in headers:
        request.headers[name] = value  # an email.message: assigning a name twice adds it twice
    s3 = service in S3
    if unsigned:
        if s3:
            request.context["client_config"] = SimpleNamespace(
                s3={"payload_signing_enabled": False}
            )
        else:
            request.context["payload_signing_enabled"] = False
    credentials = Credentials(key_id, secret, token)
    signer = (S3SigV4Auth if s3 else SigV4Auth)(credentials, service, region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        signer.add_auth(request)
    return request.headers["Authorization"], {k.lower(): v for k, v in request.headers.items()}


def verify_received(
    *,
    method: str,
    authority: str,
    raw_target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    secrets: dict[str, tuple[str, str | None]],
) -> str | None:
    """Why a received request's signature does not verify, ``None`` when it does: the key
    id's secret (``secrets``), the headers it names, its x-amz-date and payload hash."""
    lower = [(k.lower(), v) for k, v in headers]
    given = [v for k, v in lower if k == "authorization"]
    if len(given) != 1:
        return "no single Authorization header"
    m = _AUTH.fullmatch(given[0])
    if m is None:
        return "malformed Authorization"
    if m["key_id"] not in secrets:
        return "unknown key id"
    secret, token = secrets[m["key_id"]]
    signed = m["signed"].split(";")
    if "host" not in signed:
        return "host not signed"
    dates = [v for k, v in lower if k == "x-amz-date"]
    if len(dates) != 1 or dates[0][:8] != m["date"]:
        return "x-amz-date missing or not the credential's day"
    sent_tokens = [v for k, v in lower if k == "x-amz-security-token"]
    if (token is None and sent_tokens) or (token is not None and sent_tokens != [token]):
        return "session token mismatch"
    when = datetime.datetime.strptime(dates[0], "%Y%m%dT%H%M%SZ")
    kept = [(k, v) for k, v in lower if k in signed and k != "authorization"]
    if "host" not in dict(kept):
        kept.append(("host", authority))
    hashes = [v for k, v in lower if k == "x-amz-content-sha256"]
    unsigned = hashes == ["UNSIGNED-PAYLOAD"]
    if hashes and not unsigned and hashes != [hashlib.sha256(body).hexdigest()]:
        return "x-amz-content-sha256 is not the body's"  # botocore would trust the header
    expected, _ = botocore_authorization(
        method=method,
        url=f"http://{authority}{raw_target}",
        headers=kept,
        body=body,
        region=m["region"],
        service=m["service"],
        key_id=m["key_id"],
        secret=secret,
        token=token,
        when=when,
        unsigned=unsigned,
    )
    if expected != given[0]:
        return "signature mismatch"
    return None
