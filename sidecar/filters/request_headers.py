"""``request_headers``: set the upstream's configured ``request_headers`` on every call.

Values replace whatever the app sent under the same name. Secret references are resolved when the
chain is composed (start-up, reload), so a missing secret fails then, with its key path
(``upstreams.<name>.request_headers.<header>``), and never per call. A value that could split the
request head (CR, LF, NUL, or a character outside latin-1) is refused the same way. No message
here ever contains a value: only the reference (``{env: NAME}``) and the key path. When the
upstream's adapter shows the app what it received
(:attr:`~sidecar.api.AdapterTraits.shows_requests`: ``echo``), headers whose value came from a
secret are marked on each call (:mod:`sidecar.injected`), so it shows them redacted; other
routes pay nothing for it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable

from ..api import RouteContext
from ..chain import Filter, Handler
from ..config.types import SecretRef
from ..exchange import Exchange, Response
from ..injected import Injected, mark_injected

#: Field-value octets RFC 9110 §5.5 allows (visible latin-1, space, tab).
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


class UnusableHeaderValue(LookupError):
    """A configured header value cannot be used; ``key_path`` is relative to the upstream.

    The sidecar reports it as a config problem at ``upstreams.<name>.<key_path>``.
    """

    def __init__(self, key_path: str, reason: str) -> None:
        super().__init__(reason)
        self.key_path = key_path


def _value(name: str, value: str | SecretRef) -> str:
    key = f"request_headers.{name}"
    if isinstance(value, SecretRef):
        try:
            revealed = value.reveal()
        except LookupError as e:
            raise UnusableHeaderValue(key, str(e)) from None
        what = (
            f"the secret {{env: {value.env}}}"
            if value.env
            else f"the secret {{file: {value.file}}}"
        )
    else:
        revealed, what = value, "the value"
    if not _FIELD_VALUE.fullmatch(revealed):
        # never show the value: it may be a credential
        raise UnusableHeaderValue(key, f"{what} contains a control or non-latin-1 character")
    return revealed


def factory(ctx: RouteContext) -> Filter | None:
    configured = ctx.upstream.request_headers
    if not configured:
        return None
    pairs = [(name, _value(name, value)) for name, value in configured.items()]
    names = frozenset(name for name, _ in pairs)
    # values that came from a secret, by name: an adapter that shows the call (echo) shows the
    # header but not its value; values written in the file are shown as they are. Other
    # adapters never show a call, so nothing is marked for them
    secret = Injected()
    if ctx.adapter.shows_requests:
        secret = Injected(
            {
                name: "request_headers secret"
                for name, value in configured.items()
                if isinstance(value, SecretRef)
            }
        )

    # nothing to do after the call: plain functions handing back the rest of the chain's
    # awaitable, so the chain has no coroutine frame of theirs
    def request_headers(exchange: Exchange, call_next: Handler) -> Awaitable[Response]:
        items = exchange.headers.items()
        # in place: the exchange's Headers wraps the listener's list without a copy
        items[:] = [kv for kv in items if kv[0] not in names]
        items.extend(pairs)
        return call_next(exchange)

    if not secret:
        return request_headers

    def request_headers_marked(exchange: Exchange, call_next: Handler) -> Awaitable[Response]:
        items = exchange.headers.items()
        items[:] = [kv for kv in items if kv[0] not in names]
        items.extend(pairs)
        mark_injected(exchange, secret)
        return call_next(exchange)

    return request_headers_marked
