"""What a credential provider is: the base class plugins subclass, and the registry of types.

A provider puts one upstream's credential on each call: a header, a query parameter, a
signature. Provider *types* are registered through ``sidecar_register_credentials``
(``registry.add("api_key", ApiKey)``); ``upstreams.<u>.auth.type`` names one, and the keys beside
``type`` are validated by the type's :attr:`~CredentialProvider.settings_model`, so a typo fails
at load time at its key path (``upstreams.x.auth.token_url``). One instance is built per upstream
when routes are composed, and kept across reloads that leave ``auth`` unchanged (a cached token
survives them).

A provider that needs nothing asynchronous implements :meth:`~CredentialProvider.inject` (the
filter then calls it without a coroutine); one that fetches or reads implements
:meth:`~CredentialProvider.apply`. Both must *replace* what the app sent under the same name.

Not here: the filter calling providers (:mod:`sidecar.auth.filter`), the broker lending them an
HTTP client and background tasks (:mod:`sidecar.auth.broker`).
"""

from __future__ import annotations

__all__ = ["AuthConfigProblem", "CredentialProvider", "CredentialRegistry", "ProviderContext"]

import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from ..config.secrets import AuthConfigProblem, Check, SecretValue
from ..config.types import SecretRef
from ..injected import Injected
from .registry import Registry

if TYPE_CHECKING:
    import asyncio

    import aiohttp

    from ..exchange import Exchange
    from ..telemetry.metrics import Metrics


@dataclass(frozen=True)
class ProviderContext:
    """What the sidecar lends a provider when it builds one for an upstream."""

    #: the upstream's name (metric label, log field).
    upstream: str
    #: the provider type's registered name (``oauth2_client_credentials``).
    type_name: str
    #: the path of the upstream's URL, prepended to every forwarded path ("" when none).
    base_path: str
    metrics: Metrics
    log: logging.Logger
    #: starts a task owned by the sidecar (cancelled when it stops).
    spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]
    #: the shared HTTP client for control-plane calls (token endpoints), opened on first use.
    http_session: Callable[[], aiohttp.ClientSession]
    #: the loop's clock (monotonic seconds); tests pass their own.
    clock: Callable[[], float]
    #: wall-clock seconds since the epoch (signatures' timestamps).
    wall: Callable[[], float]
    #: the ``Host`` the upstream's calls are sent with (its ``host``, else its URL's authority,
    #: ``host[:port]``), for a signer that signs it; "" when there is no URL.
    authority: str = ""

    def secret(self, ref: SecretRef, key: str, check: Check | None = None) -> SecretValue:
        """Read ``ref`` now (a file is re-read when it changes). Raises a ``LookupError`` whose
        ``key_path`` is ``auth.<key>``, which stops start-up (or refuses a reload) at
        ``upstreams.<u>.auth.<key>``."""
        return SecretValue(ref, f"auth.{key}", check=check)


class CredentialProvider:
    """Base class of credential providers; one instance per upstream using it.

    Subclasses set :attr:`settings_model` and implement :meth:`inject` or :meth:`apply`;
    :meth:`unauthorized` when a refused credential can be renewed; :meth:`describe` and
    :meth:`gauges` to show their state (never a secret).
    """

    #: validates the keys of ``upstreams.<u>.auth`` beside ``type`` and ``pass_through``.
    settings_model: ClassVar[type[BaseModel]]

    def __init__(self, settings: Any, context: ProviderContext) -> None:
        self.settings = settings
        self.context = context
        #: the header this provider sets (lower-case), ``None`` when it sets none; the app's
        #: value of it is replaced, or forwarded as is with ``pass_through``.
        self.header: str | None = self.header_of(settings)

    @classmethod
    def header_of(cls, settings: Any) -> str | None:
        """The header a provider with ``settings`` sets (config checks use it too)."""
        return None

    @classmethod
    def grpc_refusal(cls, settings: Any) -> str | None:
        """Why a provider with ``settings`` cannot credential a gRPC call, ``None`` when it can.
        A gRPC call's metadata are headers, but it has no query string and its body is a stream
        of messages, not one HTTP body (:mod:`sidecar.grpc.wire`): a provider that puts its
        credential elsewhere than a header says why, and the config of an upstream of the
        ``grpc`` adapter that uses it is refused with that reason."""
        return None

    def injected(self) -> Injected:
        """What this provider puts on a call from its secrets or credentials, by name: its
        :attr:`header` unless it overrides this. Read once per route by the ``auth`` filter;
        on routes to an adapter that shows requests (``AdapterTraits.shows_requests``: the
        ``echo`` adapter) it marks each call with it (:mod:`sidecar.injected`), so the header is
        shown but not its value."""
        header = getattr(self, "header", None)
        if header is None:
            return Injected()
        # a subclass that skipped this class's __init__ has no context: name it by its class
        context = getattr(self, "context", None)
        kind = context.type_name if context is not None else type(self).__name__
        return Injected({header: f"auth {kind}"})

    def supplied(self, exchange: Exchange) -> bool:
        """Whether the app sent this credential itself (``pass_through`` then forwards it)."""
        return self.header is not None and self.header in exchange.headers

    def inject(self, exchange: Exchange) -> None:
        """Put the credential on ``exchange`` (replacing the app's), without waiting."""
        raise NotImplementedError

    async def apply(self, exchange: Exchange) -> object | None:
        """Put the credential on ``exchange`` (replacing the app's); returns what was used (a
        token), which :meth:`unauthorized` gets back if the upstream refuses it. Raise
        :class:`~sidecar.errors.CredentialsUnavailable` when there is no credential to send."""
        self.inject(exchange)
        return None

    async def unauthorized(self, grant: object | None) -> bool:
        """The upstream answered 401 to a call that carried ``grant``: renew it if possible.
        ``True``: a different credential is ready and the call is worth one more try."""
        return False

    def describe(self) -> dict[str, Any]:
        """State for ``/upstreams`` (never a secret)."""
        return {"type": self.context.type_name}

    def gauges(self) -> Iterable[tuple[str, str, float]]:
        """``(family, help, value)`` gauges read at scrape time, labelled by upstream."""
        return ()


class CredentialRegistry(Registry[type[CredentialProvider]]):
    """Credential provider classes by the name ``upstreams.<u>.auth.type`` uses."""

    kind = "credential provider"

    def add(self, name: str, provider: type[CredentialProvider]) -> None:
        if not isinstance(getattr(provider, "settings_model", None), type):
            raise TypeError(f"credential provider {name!r}: {provider!r} has no settings_model")
        self._add(name, provider)
