"""Which parts of a call the sidecar filled in from a secret or a credential provider.

The ``auth`` filter (a provider's header or query parameter: an API key, a bearer or OAuth2
token, Basic credentials, an HMAC signature) and the ``request_headers`` filter (a value given as
a ``{env|file}`` reference) say so on the exchange, under :data:`INJECTED_SECRETS`, as they put
the value on the call, when the route's adapter shows requests
(:attr:`~sidecar.api.AdapterTraits.shows_requests`). That adapter reads it: the ``echo`` adapter,
which shows the app what an upstream received, prints
``"authorization": "<redacted: auth bearer>"`` instead of the token. Values written in the file
(``x-sidecar-demo: injected-by-sidecar``) are not secrets and are not marked.

Each filter builds its :class:`Injected` once, when its route is composed; a call to such an
adapter costs one stash write (two when both filters inject), any other call nothing. Not here:
the values themselves (never stored here) and what the app sent itself (``pass_through``
forwards the app's own credential, unmarked).
"""

from __future__ import annotations

__all__ = ["INJECTED_SECRETS", "Injected", "mark_injected"]

from collections.abc import Mapping
from dataclasses import dataclass, field

from .exchange import Exchange, StashKey


@dataclass(frozen=True)
class Injected:
    """Names of what was injected, each with where its value came from (``auth api_key``)."""

    #: header name (lower-case) → source.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: query parameter name → source.
    query: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.headers or self.query)

    def merged(self, other: Injected) -> Injected:
        """Both marks (``other`` wins a name both give: it was injected later)."""
        return Injected({**self.headers, **other.headers}, {**self.query, **other.query})


#: What the filters of this call injected from secrets or credential providers.
INJECTED_SECRETS: StashKey[Injected] = StashKey("injected_secrets")


def mark_injected(exchange: Exchange, injected: Injected) -> None:
    """Record ``injected`` on ``exchange``, keeping what another filter marked before."""
    prior = exchange.peek(INJECTED_SECRETS)
    if prior is None or prior is injected:
        exchange.stash[INJECTED_SECRETS] = injected
    else:
        exchange.stash[INJECTED_SECRETS] = prior.merged(injected)
