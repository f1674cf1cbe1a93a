"""The ``aws_sigv4`` credential provider: signs every attempt of an upstream's calls with AWS
Signature Version 4, as the request will be sent.

Where it runs: the sidecar's ``auth`` filter, on each attempt, after every filter above it has
changed the call and before the ``http`` adapter writes it. So it signs what is actually sent:
the upstream's ``Host`` (``ProviderContext.authority``), the URL's base path followed by the
path left after the route's prefix was stripped, the query, the body. Two things can still
change a call after it: the ``request_headers`` of the upstream's config (applied after
``auth``, so a signed header must not be set there) and the adapter's own ``Host``,
``X-Forwarded-For`` and framing headers; so only headers nothing later touches are signed:
``host``, ``content-type``, ``content-md5``, every ``x-amz-*``, and those named in
``sign_headers``.

What it is not: a presigned-URL maker, SigV4a (multi-region), or S3's chunked
``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` uploads (use ``payload: unsigned`` to stream).
"""

from __future__ import annotations

__all__ = ["AwsSigV4", "BodyTooLargeToSign"]

import hashlib
import time
from typing import Any

from sidecar import (
    AuthConfigProblem,
    CredentialProvider,
    Exchange,
    Injected,
    ProviderContext,
    SidecarError,
    read_body,
)

from .settings import Sigv4Settings
from .signing import (
    UNSIGNED_PAYLOAD,
    Signed,
    SigningKeys,
    authorization,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    wire_path,
    wire_query,
)
from .sources import ContainerKeys, Keys, StaticKeys

#: signed whenever present, beside ``host`` and every ``x-amz-*``.
ALWAYS_SIGNED = frozenset({"content-type", "content-md5"})


class BodyTooLargeToSign(SidecarError):
    """A body over ``max_body`` cannot be hashed, so it is not sent (413)."""

    status, grpc_code, code, close_connection = 413, 8, "body_too_large", True


class AwsSigV4(CredentialProvider):
    """One per upstream; kept across reloads that leave its ``auth`` and URL alone."""

    settings_model = Sigv4Settings
    settings: Sigv4Settings

    def __init__(self, settings: Sigv4Settings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        source = settings.resolved_source
        self._source: StaticKeys | ContainerKeys
        if source == "container":
            self._source = ContainerKeys(context)
        elif source == "env":
            self._source = StaticKeys.from_env(context)
        else:
            assert settings.access_key_id is not None and settings.secret_access_key is not None
            self._source = StaticKeys(
                context, settings.access_key_id, settings.secret_access_key, settings.session_token
            )
        base = context.base_path
        if base and wire_path(base) != base:
            raise AuthConfigProblem(
                "auth",
                "the upstream URL's path must be percent-encoded as AWS signs it "
                f"(every byte but A-Za-z0-9-_.~ and '/' as %XX): {wire_path(base)}",
            )
        self._base = base
        self._authority = context.authority
        self._wall = context.wall
        self._keys = SigningKeys()
        self._extra = frozenset(settings.sign_headers)
        self._s3 = settings.s3
        self._signed_payload = settings.payload == "signed"
        self._limit = settings.max_body
        self.signed = 0

    @classmethod
    def header_of(cls, settings: Sigv4Settings) -> str | None:
        return "authorization"

    @classmethod
    def grpc_refusal(cls, settings: Sigv4Settings) -> str | None:
        return (
            "AWS Signature Version 4 signs an HTTP request (path, query, body), and a gRPC "
            "call's body is a stream of messages"
        )

    def injected(self) -> Injected:
        """Both credentials it puts on a call, so an adapter that shows the app its request
        (``echo``) shows these names but never their values."""
        kind = f"auth {self.context.type_name}"
        return Injected({"authorization": kind, "x-amz-security-token": kind})

    async def apply(self, exchange: Exchange) -> None:
        keys = await self._source.get()
        if self._signed_payload:
            payload = hashlib.sha256(await self._body(exchange)).hexdigest()
        else:
            payload = UNSIGNED_PAYLOAD
        self.sign(exchange, keys, payload)

    def sign(self, exchange: Exchange, keys: Keys, payload_hash: str) -> Signed:
        """Put the signature on ``exchange`` (path and query re-encoded as AWS encodes them,
        ``x-amz-*`` set, ``Authorization`` and ``Date`` replaced) and return what was signed."""
        settings = self.settings
        headers = exchange.headers
        exchange.path = path = wire_path(exchange.path)
        exchange.query = query = wire_query(exchange.query) if exchange.query else ""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._wall()))
        headers.remove("authorization")
        headers.remove("date")  # x-amz-date is the request's time; a Date beside it is dropped
        headers.set("x-amz-date", amz_date)
        if keys.session_token:
            headers.set("x-amz-security-token", keys.session_token)
        else:
            headers.remove("x-amz-security-token")  # another principal's, never sent with ours
        if self._s3 or not self._signed_payload or "x-amz-content-sha256" in headers:
            headers.set("x-amz-content-sha256", payload_hash)
        host = self._authority or headers.get("host") or ""
        extra = self._extra
        pairs = [("host", host)]
        pairs += [
            (name, value)
            for name, value in headers.items()
            if name.startswith("x-amz-") or name in ALWAYS_SIGNED or name in extra
        ]
        block, signed_headers = canonical_headers(pairs)
        request = canonical_request(
            exchange.method,
            canonical_uri(self._base + path, s3=self._s3),
            canonical_query(query),
            block,
            signed_headers,
            payload_hash,
        )
        region, service = settings.region, settings.service
        key = self._keys.get(keys.secret_access_key, amz_date[:8], region, service)
        value = authorization(
            access_key_id=keys.access_key_id,
            key=key,
            amz_date=amz_date,
            region=settings.region,
            service=settings.service,
            request=request,
            signed_headers=signed_headers,
        )
        headers.set("authorization", value)
        self.signed += 1
        return Signed(value, request, signed_headers)

    async def _body(self, exchange: Exchange) -> bytes:
        body = exchange.body
        limit = self._limit
        if isinstance(body, bytes):
            if len(body) > limit:
                raise self._too_large()
            return body
        length = exchange.body_length
        if length is not None and length > limit:
            raise self._too_large()  # refused before a byte of it is read
        try:
            return await read_body(exchange, limit)
        except SidecarError as e:
            if e.status == 413:
                raise self._too_large() from None
            raise

    def _too_large(self) -> BodyTooLargeToSign:
        return BodyTooLargeToSign(
            f"aws_sigv4 hashes the whole body and it is over {self._limit} bytes "
            f"(upstreams.{self.context.upstream}.auth.max_body; payload: unsigned streams it)"
        )

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.context.type_name,
            "region": self.settings.region,
            "service": self.settings.service,
            "source": self._source.source,
            "payload": self.settings.payload,
            "signed": self.signed,
            "signing_keys_cached": len(self._keys),
        }
        if isinstance(self._source, ContainerKeys):
            out["fetches"] = self._source.fetches
            out["fetch_failures"] = self._source.failures
        return out
