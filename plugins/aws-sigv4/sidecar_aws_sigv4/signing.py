"""AWS Signature Version 4, as pure functions: the canonical request, the string to sign, the
signing key, and the ``Authorization`` value. No I/O, no sidecar types.

What it is: the algorithm AWS documents ("Create a signed AWS API request") and botocore's
``SigV4Auth`` / ``S3SigV4Auth`` implement, given a request exactly as it goes on the wire.
What it is not: deciding what to sign on a call (:mod:`.provider`) or where keys come from
(:mod:`.sources`).

Two encodings are involved. :func:`wire_path` and :func:`wire_query` put a path and a query in
AWS's encoding (every byte but ``A-Za-z0-9-_.~`` percent-encoded, upper-case hex, ``%2F`` inside a
segment kept), so what is sent and what is signed cannot disagree about an escape. Then the
canonical URI is that path for S3-style services, and that path with dot segments and empty
segments removed and encoded once more for every other service (AWS's "double encoding").
"""

from __future__ import annotations

__all__ = [
    "ALGORITHM",
    "UNSIGNED_PAYLOAD",
    "Signed",
    "SigningKeys",
    "authorization",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "signing_key",
    "string_to_sign",
    "wire_path",
    "wire_query",
]

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
#: the payload hash sent when the body is not hashed (a streamed upload).
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def _as_bytes(text: str) -> bytes:
    """The bytes a wire string stands for: a front decodes the request line as latin-1, so a
    raw non-ASCII byte is one char < 256; text beyond that (a caller's own) is UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _encode(text: str) -> str:
    """One path segment, query key or value in AWS's encoding (decoded first, so an escape is
    never encoded twice and every escape ends up upper-case)."""
    return quote(unquote_to_bytes(_as_bytes(text)), safe="-_.~")


def wire_path(path: str) -> str:
    """``path`` in AWS's encoding, segment by segment (``/`` separates, ``%2F`` stays data)."""
    if not path:
        return "/"
    return "/".join(_encode(segment) for segment in path.split("/"))


def wire_query(query: str) -> str:
    """``query`` in AWS's encoding, its pairs in their order; ``+`` is a space (form encoding,
    what most HTTP clients send), sent as ``%20``; empty pairs are dropped; a key without ``=``
    (``?acl``) stays without one."""
    out: list[str] = []
    for pair in query.split("&"):
        if not pair:
            continue
        key, equals, value = pair.partition("=")
        key = _encode(key.replace("+", " "))
        out.append(f"{key}={_encode(value.replace('+', ' '))}" if equals else key)
    return "&".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 plus merged slashes, as AWS normalises a non-S3 path."""
    out: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if out:
                out.pop()
        else:
            out.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def canonical_uri(path: str, *, s3: bool) -> str:
    """The canonical URI of a path already in AWS's encoding (:func:`wire_path`)."""
    if s3:
        return path or "/"
    return quote(_remove_dot_segments(path) or "/", safe="/~")


def canonical_query(query: str) -> str:
    """The canonical query of a query already in AWS's encoding (:func:`wire_query`): pairs
    sorted by key, then value; ``key`` alone becomes ``key=``."""
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{key}={value}" for key, value in pairs)


def canonical_headers(headers: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """``(canonical headers block, signed headers list)`` of ``(name, value)`` pairs: names
    lower-cased and sorted, values trimmed with inner runs of whitespace made one space, the
    values of a repeated name joined by ``,`` in the order sent."""
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        merged.setdefault(name.lower(), []).append(" ".join(value.split()))
    names = sorted(merged)
    block = "".join(f"{name}:{','.join(merged[name])}\n" for name in names)
    return block, ";".join(names)


def canonical_request(
    method: str, uri: str, query: str, headers_block: str, signed: str, payload_hash: str
) -> str:
    return "\n".join((method.upper(), uri, query, headers_block, signed, payload_hash))


def string_to_sign(amz_date: str, scope: str, request: str) -> str:
    digest = hashlib.sha256(request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The day's key: ``HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
    "aws4_request")``."""
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


class SigningKeys:
    """Derived signing keys by (secret, day, region, service), at most ``size`` of them: a
    provider signs for one region and service, so this holds today's key, yesterday's around
    midnight, and the keys of a secret just rotated."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._keys: dict[tuple[str, str, str, str], bytes] = {}

    def get(self, secret: str, date: str, region: str, service: str) -> bytes:
        ident = (secret, date, region, service)
        key = self._keys.get(ident)
        if key is None:
            if len(self._keys) >= self._size:
                del self._keys[next(iter(self._keys))]  # the oldest
            key = self._keys[ident] = signing_key(secret, date, region, service)
        return key

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True)
class Signed:
    """What signing a request produced (the canonical request kept for tests and debugging;
    it holds no secret)."""

    authorization: str
    canonical_request: str
    signed_headers: str


def authorization(
    *,
    access_key_id: str,
    key: bytes,
    amz_date: str,
    region: str,
    service: str,
    request: str,
    signed_headers: str,
) -> str:
    """The ``Authorization`` value of a canonical ``request`` signed with the day's ``key``."""
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    message = string_to_sign(amz_date, scope, request).encode("utf-8")
    signature = hmac.new(key, message, hashlib.sha256).hexdigest()
    return (
        f"{ALGORITHM} Credential={access_key_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
