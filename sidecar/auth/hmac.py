"""``hmac``: sign every call with a shared secret (HMAC-SHA256), as webhook receivers expect.

The string-to-sign is four lines joined by ``\\n`` (no trailing newline), UTF-8 encoded::

    <timestamp>            Unix time in whole seconds, as sent in X-Timestamp
    <METHOD>               as on the request line (GET, POST...)
    <target>               path and query exactly as on the request line the receiver gets:
                           the upstream URL's base path + the forwarded path [+ "?" + query]
    <body digest>          lower-case hex SHA-256 of the body (of b"" when there is none)

and the call carries ``X-Signature: sha256=<lower-case hex HMAC-SHA256(secret, string)>`` and
``X-Timestamp: <timestamp>`` (header names and the ``sha256=`` prefix are configurable). The
app's own values of both headers are replaced (unless ``pass_through``). The inbound
``verify_hmac`` filter (:mod:`.verify`) checks exactly this, so two sidecars interoperate.

**The body must be whole to be signed**, so it is buffered, up to ``max_body`` (1 MiB): a body
that is already in memory (most are) costs nothing; a streamed one is read first. A body over
the limit is refused with 413 ``body_too_large`` and a reason naming ``auth.max_body`` before it
is sent, never streamed unsigned: an upstream that checks signatures would refuse it anyway, and
one that does not should not be given a call that only looks signed.

**Not for gRPC upstreams** (refused at load time): the string-to-sign is an HTTP request's, and
a gRPC call's body is a stream of messages that may not even be complete when the call starts.
Signing messages one by one would be a new scheme no receiver checks.
"""

from __future__ import annotations

__all__ = ["HmacSettings", "HmacSigner", "sign", "string_to_sign"]

import hashlib
import hmac

from pydantic import Field

from ..api import CredentialProvider, ProviderContext
from ..config.base import Model
from ..config.models import ConfigurableHeaderName
from ..config.policies import SecretByReference
from ..config.types import Size
from ..errors import BodyTooLarge
from ..exchange import Exchange, read_body


def string_to_sign(timestamp: str, method: str, target: str, body: bytes) -> bytes:
    """The bytes HMAC-SHA256 signs (see the module docstring)."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{timestamp}\n{method}\n{target}\n{digest}".encode()


def sign(secret: bytes, timestamp: str, method: str, target: str, body: bytes) -> str:
    """The lower-case hex HMAC-SHA256 signature of a call."""
    message = string_to_sign(timestamp, method, target, body)
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class HmacSettings(Model):
    """``upstreams.<u>.auth`` with ``type: hmac``."""

    secret: SecretByReference
    header: ConfigurableHeaderName = "x-signature"
    timestamp_header: ConfigurableHeaderName = "x-timestamp"
    #: what comes before the hex signature in ``header``.
    prefix: str = "sha256="
    #: bodies are buffered to be signed; larger ones are refused (413).
    max_body: Size = Field(1024 * 1024, ge=0, le=64 * 1024 * 1024)


class HmacSigner(CredentialProvider):
    """Signs each call (see the module)."""

    settings_model = HmacSettings
    settings: HmacSettings

    def __init__(self, settings: HmacSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        self._secret = context.secret(settings.secret, "secret")
        self._key: tuple[str, bytes] = ("", b"")
        self._limit = settings.max_body
        self._base = context.base_path
        self._wall = context.wall

    @classmethod
    def header_of(cls, settings: HmacSettings) -> str | None:
        return settings.header

    @classmethod
    def grpc_refusal(cls, settings: HmacSettings) -> str | None:
        return "it signs an HTTP request's body, and a gRPC call's body is a stream of messages"

    async def apply(self, exchange: Exchange) -> None:
        body = exchange.body
        limit = self._limit
        if not isinstance(body, bytes):
            length = exchange.body_length
            if length is not None and length > limit:
                raise self._too_large(read=False)  # refused before a byte of it is read
            try:
                body = await read_body(exchange, limit)
            except BodyTooLarge:
                raise self._too_large(read=False) from None
        elif len(body) > limit:
            raise self._too_large(read=True)
        secret = self._secret.get()
        key = self._key
        if key[0] is not secret:
            key = self._key = (secret, secret.encode())
        timestamp = str(int(self._wall()))
        query = exchange.query
        target = f"{self._base}{exchange.path}?{query}" if query else self._base + exchange.path
        signature = sign(key[1], timestamp, exchange.method, target, body)
        headers = exchange.headers
        headers.set(self.settings.header, self.settings.prefix + signature)
        headers.set(self.settings.timestamp_header, timestamp)
        return None

    def _too_large(self, *, read: bool) -> BodyTooLarge:
        err = BodyTooLarge(
            f"hmac signing needs the whole body and it is over {self._limit} bytes "
            f"(upstreams.{self.context.upstream}.auth.max_body)"
        )
        # a body read whole leaves the app's connection in a clean state: it may stay open
        err.close_connection = not read
        return err
