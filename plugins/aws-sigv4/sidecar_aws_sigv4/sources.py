"""Where the AWS keys come from: references in the config, the standard environment variables,
or the ECS/EKS container credentials endpoint.

What it is not: the instance metadata service (IMDS) and the shared config/credentials files
(``~/.aws``) are not read (docs/aws_sigv4.md says why). Nothing here logs or repeats a key: an
error names the reference, the variable or the endpoint, never a value.
"""

from __future__ import annotations

__all__ = ["ContainerKeys", "Keys", "StaticKeys", "container_endpoint"]

import asyncio
import datetime
import ipaddress
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sidecar import AuthConfigProblem, CredentialsUnavailable, ProviderContext, SecretRef

#: the standard environment variables (what every AWS SDK reads).
ENV_KEY_ID = "AWS_ACCESS_KEY_ID"
ENV_SECRET = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a variable's name
ENV_TOKEN = "AWS_SESSION_TOKEN"  # noqa: S105 - a variable's name
#: the container endpoint's variables, as the ECS agent and EKS Pod Identity set them.
ENV_RELATIVE = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
ENV_FULL = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
ENV_AUTH = "AWS_CONTAINER_AUTHORIZATION_TOKEN"  # noqa: S105 - a variable's name
ENV_AUTH_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"  # noqa: S105 - a variable's name
#: ECS's credentials address (a relative URI is resolved against it).
ECS_ADDRESS = "http://169.254.170.2"
#: addresses a plain-http full URI may name (as the AWS SDKs allow): the ECS and EKS agents, and
#: loopback; anything else must be https, since the answer is a secret.
_AGENT_ADDRESSES = frozenset({"169.254.170.2", "169.254.170.23", "fd00:ec2::23"})
#: container keys are renewed this long before they expire.
REFRESH_MARGIN = 300.0
#: the endpoint must answer within this (seconds).
FETCH_TIMEOUT = 3.0
#: the largest answer read from the endpoint.
MAX_ANSWER = 64 * 1024


@dataclass(frozen=True)
class Keys:
    """One set of AWS keys; ``repr`` shows the key id only."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    #: wall-clock expiry (epoch seconds), ``None`` when they do not expire.
    expires: float | None = None


class StaticKeys:
    """Keys read from references (``{env: ...}`` / ``{file: ...}``); a file is re-read when it
    changes, so a rotated key is used from the next call."""

    source = "keys"

    def __init__(
        self,
        context: ProviderContext,
        key_id: SecretRef,
        secret: SecretRef,
        token: SecretRef | None,
        *,
        source: str = "keys",
    ) -> None:
        self.source = source
        self._key_id = context.secret(key_id, "access_key_id")
        self._secret = context.secret(secret, "secret_access_key")
        self._token = context.secret(token, "session_token") if token is not None else None
        self._last: Keys | None = None

    def now(self) -> Keys:
        key_id, secret = self._key_id.get(), self._secret.get()
        token = self._token.get() if self._token is not None else None
        last = self._last
        if (
            last is None
            or last.access_key_id != key_id
            or last.secret_access_key != secret
            or last.session_token != token
        ):
            last = self._last = Keys(key_id, secret, token)
        return last

    async def get(self) -> Keys:
        return self.now()

    @classmethod
    def from_env(cls, context: ProviderContext) -> StaticKeys:
        """The standard variables; the session token only when its variable is set."""
        token = SecretRef(env=ENV_TOKEN) if os.environ.get(ENV_TOKEN) else None
        key_id, secret = SecretRef(env=ENV_KEY_ID), SecretRef(env=ENV_SECRET)
        return cls(context, key_id, secret, token, source="env")


def container_endpoint(environ: dict[str, str] | os._Environ[str]) -> str:
    """The endpoint's URL from the environment; raises :class:`AuthConfigProblem` at
    ``auth.source`` when it is unset or names an address keys must not be fetched from."""
    relative, full = environ.get(ENV_RELATIVE), environ.get(ENV_FULL)
    if relative:
        return ECS_ADDRESS + ("" if relative.startswith("/") else "/") + relative
    if not full:
        raise AuthConfigProblem(
            "auth.source", f"source container needs {ENV_RELATIVE} or {ENV_FULL} to be set"
        )
    parts = urlsplit(full)
    if parts.scheme == "https" and parts.hostname:
        return full
    host = parts.hostname or ""
    if parts.scheme == "http" and (host in _AGENT_ADDRESSES or _loopback(host)):
        return full
    raise AuthConfigProblem(
        "auth.source",
        f"{ENV_FULL} must be https, or http to loopback or the ECS/EKS agent address",
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ContainerKeys:
    """Keys fetched from the container credentials endpoint when first needed, kept until
    :data:`REFRESH_MARGIN` before they expire, then fetched again (one fetch at a time). When a
    renewal fails the keys still valid are used; with none valid the call gets 503
    ``credentials_unavailable``."""

    source = "container"

    def __init__(self, context: ProviderContext) -> None:
        self._context = context
        self._url = container_endpoint(os.environ)
        self._auth_env = os.environ.get(ENV_AUTH)
        self._auth_file = os.environ.get(ENV_AUTH_FILE)
        self._keys: Keys | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        self.failures = 0

    def _fresh(self, keys: Keys | None, margin: float) -> bool:
        return keys is not None and (
            keys.expires is None or keys.expires - margin > self._context.wall()
        )

    async def get(self) -> Keys:
        keys = self._keys
        if self._fresh(keys, REFRESH_MARGIN):
            assert keys is not None
            return keys
        async with self._lock:
            keys = self._keys
            if self._fresh(keys, REFRESH_MARGIN):
                assert keys is not None
                return keys
            try:
                keys = self._keys = await self._fetch()
            except CredentialsUnavailable as e:
                self.failures += 1
                if self._fresh(keys, 0.0):
                    assert keys is not None
                    self._context.log.warning(
                        "aws_sigv4: renewing container keys failed (%s); using the current ones",
                        e.detail,
                    )
                    return keys
                raise
            return keys

    def _authorization(self) -> str | None:
        if self._auth_file:
            try:
                with open(self._auth_file, encoding="utf-8") as f:
                    return f.read().strip()
            except OSError:
                raise CredentialsUnavailable(
                    f"aws_sigv4: cannot read {ENV_AUTH_FILE} (upstream {self._context.upstream})"
                ) from None
        return self._auth_env or None

    async def _fetch(self) -> Keys:
        import aiohttp

        self.fetches += 1
        headers = {"accept": "application/json"}
        token = self._authorization()
        if token:
            headers["authorization"] = token
        where = f"the container credentials endpoint (upstream {self._context.upstream})"
        try:
            timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
            session = self._context.http_session()
            async with session.get(self._url, headers=headers, timeout=timeout) as r:
                if r.status != 200:
                    raise CredentialsUnavailable(f"aws_sigv4: {where} answered {r.status}")
                raw = await r.content.read(MAX_ANSWER + 1)
        except (aiohttp.ClientError, TimeoutError, OSError):
            raise CredentialsUnavailable(f"aws_sigv4: {where} cannot be reached") from None
        return parse_container_answer(raw, where)


def parse_container_answer(raw: bytes, where: str) -> Keys:
    """The keys of an endpoint's JSON answer; a malformed one is refused without repeating it."""
    import json

    if len(raw) > MAX_ANSWER:
        raise CredentialsUnavailable(f"aws_sigv4: {where} answered over {MAX_ANSWER} bytes")
    try:
        data = json.loads(raw)
        key_id, secret = data["AccessKeyId"], data["SecretAccessKey"]
        token, expiration = data.get("Token"), data.get("Expiration")
        if not (isinstance(key_id, str) and key_id and isinstance(secret, str) and secret):
            raise ValueError
        if token is not None and not isinstance(token, str):
            raise ValueError
        expires = None
        if expiration is not None:
            when = datetime.datetime.fromisoformat(str(expiration).replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.UTC)
            expires = when.timestamp()
    except (ValueError, KeyError, TypeError):
        raise CredentialsUnavailable(f"aws_sigv4: {where} answered malformed keys") from None
    return Keys(key_id, secret, token or None, expires)
