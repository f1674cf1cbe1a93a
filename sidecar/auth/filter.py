"""``auth``: put the upstream's credential on every attempt (order 860).

Where it sits, and why (:mod:`sidecar.filters` lists every filter's place): inside ``retry``
(820) and the circuit breaker (840), so each attempt carries a credential taken when it is sent
(a token renewed between two attempts is used by the second), the body is already replayable
when a signer needs it, and an open breaker refuses a call before any token is fetched; outside
``request_headers`` (900), which an operator may still use to override it on purpose.

Per call: with ``pass_through``, a call carrying the provider's header (or query parameter) is
forwarded as the app sent it; otherwise the provider **replaces** whatever the app sent under
that name. A provider that needs no I/O (api_key, bearer, basic) costs one plain function call.
When the upstream answers 401 to a renewable credential (OAuth2), the provider renews it and
the call is sent once more, if its body is still in memory (replayable); otherwise, or when no
different credential can be had, the app gets the upstream's 401.

On a front whose body is a stream of whole messages (gRPC:
:attr:`~sidecar.api.FrontTraits.whole_messages`) the refusal is UNAUTHENTICATED (a trailers-only
answer) and the call is sent once more when its request messages could be kept
(:class:`~sidecar.resilience.replay.MessageReplay`, up to ``retry.buffer``; the retry filter's
buffer when there is one); a renewable provider then keeps each call's messages as they are
sent.

``CredentialsUnavailable`` (no valid token and the IdP failing) ends the call with 503
``credentials_unavailable`` and counts ``sidecar_credentials_unavailable_total``.

What it injected is marked on the call (:mod:`sidecar.injected`) only when the upstream's
adapter shows the app what it received (:attr:`~sidecar.api.AdapterTraits.shows_requests`:
``echo``), so that adapter shows the names but never the values; other routes pay nothing.
"""

from __future__ import annotations

__all__ = ["factory", "make_auth_filter"]

from collections.abc import Awaitable, Callable
from typing import Final

from ..api import CredentialProvider, RouteContext
from ..chain import Filter, Handler
from ..errors import CredentialsUnavailable
from ..exchange import Exchange, Response, discard
from ..grpc.wire import grpc_status
from ..injected import Injected, mark_injected
from ..resilience.replay import message_replay
from .api_key import ApiKey
from .broker import RESOURCE, CredentialBroker


def factory(ctx: RouteContext) -> Filter | None:
    auth = ctx.upstream.auth
    if auth is None:
        return None
    broker = ctx.resources.get(RESOURCE)
    if not isinstance(broker, CredentialBroker):
        raise RuntimeError(
            "upstream auth needs the credential broker (the 'credentials' lifespan of "
            "sidecar.auth.plugin), which is not running"
        )
    provider = broker.provider(ctx)
    assert provider is not None
    count: Callable[[], None] | None = None
    if type(provider).apply is not CredentialProvider.apply:  # only these can be unavailable
        count = ctx.metrics.credentials_unavailable.labels(ctx.upstream_name).inc
    grpc_buffer = ctx.upstream.retry.buffer if ctx.front.whole_messages else None
    return make_auth_filter(
        provider,
        pass_through=auth.pass_through,
        on_unavailable=count,
        grpc_buffer=grpc_buffer,
        mark=ctx.adapter.shows_requests,
    )


def make_auth_filter(
    provider: CredentialProvider,
    *,
    pass_through: bool = False,
    on_unavailable: Callable[[], None] | None = None,
    grpc_buffer: int | None = None,
    mark: bool = False,
) -> Filter:
    """The filter of one route; ``on_unavailable()`` is called for each 503 it causes.
    ``grpc_buffer``: a route whose body is a stream of gRPC messages, kept up to that many bytes
    to be sent again after UNAUTHENTICATED. ``mark``: the adapter shows the app the request
    (echo): each call is marked with what the provider put on it."""
    kind = type(provider)
    supplied = provider.supplied
    count = on_unavailable or _nothing
    renewable = kind.unauthorized is not CredentialProvider.unauthorized
    # what the provider puts on a call, by name, so an adapter that shows the call shows these
    # names but never their values; None (nothing to mark, or no one to show it) costs nothing
    marks = _marks(provider, mark)

    if kind.apply is CredentialProvider.apply and not renewable:
        direct = provider.header_injection() if isinstance(provider, ApiKey) else None
        if direct is not None and marks is None and not pass_through:
            # a key in a header: set here, in compiled code, not by the interpreted provider
            header, secret = direct
            # a key from the environment or the config is held (``SecretValue.get`` is
            # interpreted code); one from a file is read on each call, as it may be rotated
            fixed = secret.fixed

            def auth_header(exchange: Exchange, call_next: Handler) -> Awaitable[Response]:
                exchange.headers.set(header, fixed if fixed is not None else secret.get())
                return call_next(exchange)

            return auth_header
        inject = _marking(provider.inject, marks)
        # nothing to do after the call: plain functions handing back the rest of the chain's
        # awaitable, so the chain has no coroutine frame of theirs (one fewer on every
        # resumption of the call); an error of ``inject`` is raised where the filter is called
        if not pass_through:

            def auth_static(exchange: Exchange, call_next: Handler) -> Awaitable[Response]:
                inject(exchange)
                return call_next(exchange)

            return auth_static

        def auth_static_pass(exchange: Exchange, call_next: Handler) -> Awaitable[Response]:
            if not supplied(exchange):
                inject(exchange)
            return call_next(exchange)

        return auth_static_pass

    apply = provider.apply
    if renewable and grpc_buffer is not None:
        return _renewing_grpc(provider, pass_through, count, grpc_buffer, marks)

    async def auth(exchange: Exchange, call_next: Handler) -> Response:
        if pass_through and supplied(exchange):
            return await call_next(exchange)
        try:
            grant = await apply(exchange)
        except CredentialsUnavailable:
            count()
            raise
        if marks is not None:
            mark_injected(exchange, marks)
        response = await call_next(exchange)
        if response.status != 401 or not renewable or not isinstance(exchange.body, bytes):
            return response
        if not await provider.unauthorized(grant):
            return response  # nothing better to send: the app gets the upstream's 401
        await discard(response)
        try:
            await apply(exchange)
        except CredentialsUnavailable:
            count()
            raise
        return await call_next(exchange)

    return auth


def _renewing_grpc(
    provider: CredentialProvider,
    pass_through: bool,
    count: Callable[[], None],
    limit: int,
    marks: Injected | None,
) -> Filter:
    """The renewing filter of a gRPC route: UNAUTHENTICATED is gRPC's 401."""
    apply, supplied = provider.apply, provider.supplied

    async def auth_grpc(exchange: Exchange, call_next: Handler) -> Response:
        if pass_through and supplied(exchange):
            return await call_next(exchange)
        try:
            grant = await apply(exchange)
        except CredentialsUnavailable:
            count()
            raise
        if marks is not None:
            mark_injected(exchange, marks)
        replay = message_replay(exchange, limit)
        response = await call_next(exchange)
        if grpc_status(response) != _UNAUTHENTICATED or (
            replay is not None and not replay.replayable
        ):
            return response
        if not await provider.unauthorized(grant):
            return response  # nothing better to send: the app gets the upstream's refusal
        await discard(response)
        try:
            await apply(exchange)
        except CredentialsUnavailable:
            count()
            raise
        if replay is not None:
            exchange.body = replay.attempt()
        return await call_next(exchange)

    return auth_grpc


#: gRPC's UNAUTHENTICATED status code.
_UNAUTHENTICATED: Final = 16


def _nothing() -> None:
    return None


def _marks(provider: CredentialProvider, mark: bool) -> Injected | None:
    """What to mark on each call, or ``None`` when nothing is (no one shows it, or nothing)."""
    if not mark:
        return None
    marks = provider.injected()
    return marks if marks else None


def _marking(
    inject: Callable[[Exchange], None], marks: Injected | None
) -> Callable[[Exchange], None]:
    """``inject``, marking each call it credentials when there is something to mark."""
    if marks is None:
        return inject  # the provider's own method: no extra call per request

    def inject_marked(exchange: Exchange) -> None:
        inject(exchange)
        mark_injected(exchange, marks)

    return inject_marked
