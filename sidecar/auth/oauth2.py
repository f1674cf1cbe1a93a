"""``oauth2_client_credentials``: a bearer token from an OAuth2 token endpoint (RFC 6749 §4.4).

The sidecar posts ``grant_type=client_credentials`` (with ``scope``, ``audience`` and any extra
parameters) to ``token_url``, authenticating the client with an HTTP Basic header
(``client_auth: basic``, RFC 6749 §2.3.1, the default every server must support) or with
``client_id``/``client_secret`` in the form body (``client_auth: body``). The answer's
``access_token`` goes on every call as ``Authorization: Bearer <token>``, replacing the app's.

How long a token is used, when it is renewed, what happens while the IdP fails and that an
expired token is never sent: :mod:`.tokens`. The client secret is read again from its file for
each fetch, so a secret rotated on disk is used by the next fetch. An upstream answering 401
gets the call once more with a renewed token (:meth:`OAuth2ClientCredentials.unauthorized`).

Token requests use the sidecar's shared aiohttp client (as every control-plane call does), bounded
by ``timeout``, never following redirects (a redirect would carry the client secret elsewhere).
Failures are described by status code and OAuth ``error`` code only: the IdP's body may echo
what it was sent. aiohttp is imported when a provider is built (start-up, or the reload that
adds it), not when this module is: a sidecar without OAuth2 upstreams never loads it here.
"""

from __future__ import annotations

__all__ = ["OAuth2ClientCredentials", "OAuth2Settings"]

import base64
import json
import re
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote_plus, urlsplit

from pydantic import AfterValidator, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..api import CredentialProvider, ProviderContext
from ..config.base import Model
from ..config.models import ConfigurableHeaderName
from ..config.policies import Backoff, SecretByReference
from ..config.secrets import SecretValue, UnusableSecret
from ..config.types import PositiveDuration, SecretRef, StrOrSecret, header_value_problem, show
from ..exchange import Exchange
from .tokens import Token, TokenFetchError, TokenSource

if TYPE_CHECKING:
    import aiohttp

#: A token endpoint's answer is small; more than this is not one.
MAX_TOKEN_RESPONSE = 64 * 1024
#: What an OAuth ``error`` code looks like (RFC 6749 §5.2); anything else is not repeated.
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: Form parameters the sidecar sets itself.
_RESERVED_PARAMS = frozenset({"grant_type", "scope", "audience", "client_id", "client_secret"})


def _fraction(value: float) -> float:
    if not 0.0 < value <= 0.9:
        raise PydanticCustomError(
            "refresh_at",
            "a fraction of the token's lifetime above 0 and at most 0.9, got {got}",
            {"got": show(value)},
        )
    return value


Fraction = Annotated[float, AfterValidator(_fraction)]


class OAuth2Settings(Model):
    """``upstreams.<u>.auth`` with ``type: oauth2_client_credentials``."""

    #: the token endpoint (``https://`` in production).
    token_url: str
    client_id: StrOrSecret
    client_secret: SecretByReference
    scopes: list[str] = []
    #: the ``audience`` parameter many IdPs want (Auth0, Okta); none when unset.
    audience: str | None = None
    #: more form parameters for the token request (``resource``...).
    extra_params: dict[str, str] = {}
    #: ``basic``: an HTTP Basic header (RFC 6749 §2.3.1); ``body``: in the form.
    client_auth: Literal["basic", "body"] = "basic"
    #: the header the token is sent in, as ``Bearer <token>``.
    header: ConfigurableHeaderName = "authorization"
    #: one token request's budget.
    timeout: PositiveDuration = 5.0
    #: renew at a random point between these fractions of the token's lifetime.
    refresh_at: tuple[Fraction, Fraction] = (0.5, 0.8)
    #: the lifetime assumed when the IdP's answer has no ``expires_in``.
    default_lifetime: PositiveDuration = 300.0
    #: waits between failed fetches: doubling from ``base`` up to ``max`` (jittered).
    retry_backoff: Backoff = Backoff(base=0.5, max=30.0)
    #: a CA bundle to verify an ``https://`` token endpoint; the system CAs when unset.
    ca: str | None = None

    @field_validator("token_url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise PydanticCustomError(
                "url",
                'expected a URL like "https://idp.example/oauth2/token", got {got}',
                {"got": show(v)},
            )
        if "@" in parts.netloc:
            raise PydanticCustomError(
                "url", "a token URL carries no credentials: give client_id and client_secret"
            )
        if parts.fragment:
            raise PydanticCustomError("url", "a token URL has no fragment")
        return v

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str]) -> list[str]:
        for scope in v:
            if not scope or any(c in scope for c in ' "\\') or not scope.isprintable():
                raise PydanticCustomError(
                    "scope",
                    "a scope is printable, without spaces or quotes, got {got}",
                    {"got": show(scope)},
                )
        return v

    @field_validator("extra_params")
    @classmethod
    def _params(cls, v: dict[str, str]) -> dict[str, str]:
        taken = sorted(_RESERVED_PARAMS & set(v))
        if taken:
            raise PydanticCustomError(
                "extra_params",
                "{names} set by the sidecar (use the keys scopes, audience, client_id, "
                "client_secret)",
                {"names": ", ".join(taken)},
            )
        return v

    @model_validator(mode="after")
    def _ordered(self) -> OAuth2Settings:
        if self.refresh_at[0] > self.refresh_at[1]:
            raise PydanticCustomError("refresh_at", "refresh_at is [earliest, latest]")
        return self


class OAuth2ClientCredentials(CredentialProvider):
    """Bearer tokens from a token endpoint, cached and renewed early (see the module)."""

    settings_model = OAuth2Settings
    settings: OAuth2Settings

    def __init__(self, settings: OAuth2Settings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        # the token client's library, loaded with the provider (start-up), not by the first call
        import aiohttp

        self._aiohttp = aiohttp
        self._secret = context.secret(settings.client_secret, "client_secret")
        cid = settings.client_id
        self._client_id: SecretValue | str = (
            context.secret(cid, "client_id") if isinstance(cid, SecretRef) else cid
        )
        self._ssl = _ssl_context(settings.ca) if settings.ca else None
        self._form_base = {"grant_type": "client_credentials"}
        if settings.scopes:
            self._form_base["scope"] = " ".join(settings.scopes)
        if settings.audience:
            self._form_base["audience"] = settings.audience
        self._form_base.update(settings.extra_params)
        results: dict[str, Any] = {}
        family = context.metrics.tokens_refreshed

        def counted(result: str) -> None:
            child = results.get(result)
            if child is None:
                child = results[result] = family.labels(context.upstream, result)
            child.inc()

        self.source = TokenSource(
            self._fetch,
            name=context.upstream,
            spawn=context.spawn,
            clock=context.clock,
            refresh_at=settings.refresh_at,
            backoff=(settings.retry_backoff.base, settings.retry_backoff.max),
            default_lifetime=settings.default_lifetime,
            on_result=counted,
        )
        #: the header value of the current token, built once per token
        self._rendered: tuple[Token | None, str] = (None, "")

    @classmethod
    def header_of(cls, settings: OAuth2Settings) -> str | None:
        return settings.header

    async def apply(self, exchange: Exchange) -> Token:
        token = await self.source.get()
        rendered = self._rendered
        if rendered[0] is not token:
            rendered = self._rendered = (token, f"Bearer {token.value}")
        exchange.headers.set(self.settings.header, rendered[1])
        return token

    async def unauthorized(self, grant: object | None) -> bool:
        if not isinstance(grant, Token):
            return False
        return await self.source.renew(grant) is not None

    async def _fetch(self) -> tuple[str, float | None]:
        s = self.settings
        secret = self._secret.fresh()  # a secret rotated on disk is used by the very next fetch
        cid = self._client_id.fresh() if isinstance(self._client_id, SecretValue) else s.client_id
        assert isinstance(cid, str)
        form = dict(self._form_base)
        headers = {"Accept": "application/json"}
        if s.client_auth == "basic":
            pair = f"{quote_plus(cid)}:{quote_plus(secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"], form["client_secret"] = cid, secret
        session = self.context.http_session()
        aiohttp = self._aiohttp
        try:
            async with session.post(
                s.token_url,
                data=form,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=s.timeout),
                ssl=self._ssl if self._ssl is not None else True,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                body = await _read_bounded(resp.content, MAX_TOKEN_RESPONSE + 1)
        except TimeoutError:
            raise TokenFetchError(
                "unreachable", f"no answer from the token endpoint within {s.timeout:g}s"
            ) from None
        except aiohttp.ClientError as e:
            raise TokenFetchError(
                "unreachable", f"cannot reach the token endpoint: {type(e).__name__}"
            ) from None
        return _parse(status, body)

    def describe(self) -> dict[str, Any]:
        s, src = self.settings, self.source
        return {
            "type": self.context.type_name,
            "token_url": s.token_url,
            "scopes": list(s.scopes),
            "client_auth": s.client_auth,
            "token": {
                "valid_for_s": round(src.seconds_left(), 3),
                "fetched": src.fetched,
                "failed": src.failed,
                "last_error": src.last_error,
            },
        }

    def gauges(self) -> Iterable[tuple[str, str, float]]:
        yield (
            "sidecar_token_expiry_seconds",
            "Seconds the upstream's cached OAuth2 token stays usable (0: none, or expired).",
            self.source.seconds_left(),
        )


def _parse(status: int, body: bytes) -> tuple[str, float | None]:
    """``(access_token, expires_in)`` from a token endpoint's answer, or :class:`TokenFetchError`
    whose reason repeats nothing the IdP sent but a status and an OAuth error code."""
    if len(body) > MAX_TOKEN_RESPONSE:
        raise TokenFetchError(
            "invalid", f"the token endpoint's answer is over {MAX_TOKEN_RESPONSE} bytes"
        )
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if status != 200:
        code = data.get("error") if isinstance(data, dict) else None
        said = f" ({code})" if isinstance(code, str) and _ERROR_CODE.match(code) else ""
        raise TokenFetchError("rejected", f"the token endpoint answered {status}{said}")
    if not isinstance(data, dict):
        raise TokenFetchError("invalid", "the token endpoint's answer is not a JSON object")
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenFetchError("invalid", "the token endpoint's answer has no access_token")
    if header_value_problem(token) is not None:
        raise TokenFetchError("invalid", "the access_token cannot be sent in a header")
    raw = data.get("expires_in")
    expires_in: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        expires_in = float(raw)
    elif isinstance(raw, str):
        try:
            expires_in = float(raw)  # some IdPs send it as a string
        except ValueError:
            expires_in = None
    return token, expires_in


async def _read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body up to ``limit`` bytes (a longer one is cut there, and refused by the caller)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in stream.iter_chunked(16 * 1024):
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)


def _ssl_context(ca: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as e:
        raise UnusableSecret("auth.ca", f"cannot load the CA bundle {show(ca)}: {e}") from None
