"""Clients of the providers: one aiohttp session per configured provider, and how a call failed.

The adapter talks to providers with aiohttp, not through the sidecar's HTTP upstream machinery:
that machinery is not part of the plugin API, and an LLM call is a few long requests, where a
client library's cost does not show. Each provider gets its own connection pool (bounded by
``max_connections``), opened on its first call and closed with the adapter.

A provider's answer is sorted here once: a success (JSON, or an open SSE stream), or a
:class:`ProviderFailure` saying whether the router may try elsewhere (connect errors, timeouts,
408, 409, 429, 5xx and Anthropic's 529) or must give the app the provider's answer (any other
4xx: the request itself is wrong). Not here: which deployment is tried (:mod:`.router`),
translation (``translate``). The key is sent, never logged or put in an error.
"""

from __future__ import annotations

__all__ = ["ProviderClient", "ProviderFailure", "parse_retry_after"]

import asyncio
import json
import math
import re
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from sidecar import SecretValue, deferred

from .config import Provider

if TYPE_CHECKING:
    import aiohttp
else:  # imported when first used: not by a sidecar that has no such upstream
    aiohttp = deferred("aiohttp")

#: statuses after which another deployment is tried (besides every 5xx)
FAILOVER_STATUSES = frozenset({408, 409, 429})
#: bytes of a provider's error body read to find its message
ERROR_BODY_LIMIT = 64 * 1024
#: what a provider's error type looks like (``invalid_request_error``); anything else is not
#: passed on (it is the provider's text, and may echo a key)
ERROR_TYPE = re.compile(r"[a-z_]{1,64}")


class ProviderFailure(Exception):
    """One attempt failed. ``reason`` is a bounded label (``connect``, ``timeout``, ``reset``,
    ``429``, ``5xx``, ``529``, ``4xx``...); ``failover`` says whether another deployment may be
    tried; ``status`` and ``message`` are the provider's (its error message, never a key)."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        failover: bool = True,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.failover = failover
        #: the provider's own error type (``invalid_request_error``...), when it said one
        self.error_type = error_type


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the delta form providers send), ``None`` when absent or not
    a number (an HTTP date is not worth a parser here: providers send seconds)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < math.inf else None  # nan and inf are no wait


def status_reason(status: int) -> str:
    """The metric label of a failing status: its code for the ones that matter, else its class."""
    if status in (408, 409, 429, 529):
        return str(status)
    return f"{min(status // 100, 5)}xx"  # past 599 no HTTP status class: a server's failure


def error_message(body: bytes) -> tuple[str, str | None]:
    """The message and type in an OpenAI or Anthropic error body (both nest ``error``)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return "the provider answered with an error", None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        message = err.get("message")
        kind = err.get("type")
        return (
            str(message) if message else "the provider answered with an error",
            kind if isinstance(kind, str) and ERROR_TYPE.fullmatch(kind) else None,
        )
    return "the provider answered with an error", None


async def read_upto(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body until its end or past ``limit`` bytes (then ``limit + 1`` of them): one
    ``read(n)`` returns only what has arrived so far, often a piece of the answer."""
    raw = bytearray()
    while len(raw) <= limit:
        piece = await response.content.read(limit + 1 - len(raw))
        if not piece:
            break
        raw += piece
    return bytes(raw)


class ProviderClient:
    """Sends requests to one provider with its key; one per provider and adapter."""

    def __init__(self, name: str, provider: Provider, key: SecretValue, max_body: int) -> None:
        self.name = name
        self.kind = provider.kind
        self.provider = provider
        self._key = key
        self._max_body = max_body
        self._base = provider.base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def scrub(self, message: str, status: int | None) -> str:
        """A provider's error message as the app may see it: a refused key (401/403) gets a
        message of ours (providers echo part of a wrong key), and the key never appears."""
        if status in (401, 403):
            return f"provider {self.name!r} refused the sidecar's credentials (status {status})"
        key = self._key.get()
        return message.replace(key, "[redacted]") if key else message

    def _headers(self) -> dict[str, str]:
        key = self._key.get()
        if self.kind == "openai":
            return {"authorization": f"Bearer {key}", "content-type": "application/json"}
        return {
            "x-api-key": key,
            "anthropic-version": self.provider.anthropic_version,
            "content-type": "application/json",
        }

    def url(self, endpoint: str) -> str:
        """Where a call to ``endpoint`` goes: ``embeddings`` (OpenAI only), else the provider's
        chat endpoint (``/chat/completions`` or ``/v1/messages``), whichever front the app used."""
        if self.kind == "openai":
            return (
                f"{self._base}/{'embeddings' if endpoint == 'embeddings' else 'chat/completions'}"
            )
        return f"{self._base}/v1/messages"

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.provider.max_connections)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.provider.connect_timeout
                ),
                auto_decompress=True,
            )
        return self._session

    async def post(self, endpoint: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """Send ``body`` and return the response once its head says success (status < 400);
        raises :class:`ProviderFailure` otherwise. The caller bounds the time (asyncio.timeout)
        and reads or releases the body."""
        try:
            data = json.dumps(body).encode()
        except RecursionError:  # parsed at the app's call, but too deep to encode from here
            message = "the request is nested too deeply"
            raise ProviderFailure("4xx", message, status=400, failover=False) from None
        session = self._open_session()
        try:
            # no redirects: the key would go along to wherever the provider points
            response = await session.post(
                self.url(endpoint),
                data=data,
                headers=self._headers(),
                allow_redirects=False,
            )
        except TimeoutError:
            raise
        except aiohttp.ClientConnectorError as e:
            raise ProviderFailure("connect", f"cannot connect to provider {self.name!r}") from e
        except (aiohttp.ClientError, OSError) as e:
            raise ProviderFailure("reset", f"provider {self.name!r} dropped the call") from e
        if 200 <= response.status < 300:
            return response
        if response.status < 400:
            response.release()
            raise ProviderFailure("protocol", f"provider {self.name!r} answered {response.status}")
        try:
            raw = await read_upto(response, ERROR_BODY_LIMIT)
        except (aiohttp.ClientError, OSError):
            raw = b""
        finally:
            response.release()
        status = response.status
        message, error_type = error_message(raw)
        raise ProviderFailure(
            status_reason(status),
            message,
            status=status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            failover=status >= 500 or status in FAILOVER_STATUSES,
            error_type=error_type,
        )

    async def read_json(self, response: aiohttp.ClientResponse) -> dict[str, Any]:
        """The whole JSON answer (bounded); a cut or malformed one is a failover failure."""
        try:
            raw = await read_upto(response, self._max_body)
        except (aiohttp.ClientError, OSError) as e:
            raise ProviderFailure("reset", f"provider {self.name!r} dropped the answer") from e
        finally:
            response.release()
        if len(raw) > self._max_body:
            raise ProviderFailure("protocol", f"provider {self.name!r} answered too much")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise ProviderFailure("protocol", f"provider {self.name!r} answered no JSON") from e
        if not isinstance(data, dict):
            raise ProviderFailure("protocol", f"provider {self.name!r} answered no JSON object")
        if "error" in data or data.get("type") == "error":
            # an error with status 200: no answer to pass on, whatever the status says
            raise ProviderFailure("protocol", f"provider {self.name!r} answered an error")
        return data

    async def chunks(self, response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
        """The raw bytes of a streamed answer; a cut stream raises :class:`ProviderFailure`."""
        try:
            async for chunk in response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError) as e:
            raise ProviderFailure("reset", f"provider {self.name!r} dropped the stream") from e
        finally:
            response.release()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
            await asyncio.sleep(0)  # let the connector's transports close
