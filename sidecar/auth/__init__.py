"""Credentials: what the sidecar puts on calls to upstreams, and checks on calls it receives.

- :mod:`.provider`: the provider base class and the registry ``sidecar_register_credentials``
  fills; one file per built-in provider: :mod:`.api_key`, :mod:`.bearer`, :mod:`.basic`,
  :mod:`.oauth2` (``oauth2_client_credentials``), :mod:`.hmac`;
- secrets (a value re-read when its file changes) are :mod:`sidecar.config.secrets`;
- :mod:`.tokens`: the token cache (early refresh, single-flight, never stale, IdP backoff);
- :mod:`.broker`: builds each upstream's provider, owns the token endpoint client and tasks;
- :mod:`.filter`: the ``auth`` filter (replace, pass-through, 401 → renew → one more try);
- :mod:`.verify`: the ``verify_hmac`` filter for inbound webhooks;
- :mod:`.checks`: ``auth`` config checks against the registered providers;
- :mod:`.plugin`: the built-in plugin registering all of it.

Not here: mTLS and workload identity (TLS material belongs to the listeners and pools).
User guide: docs/credentials.md.
"""

from __future__ import annotations

from ..api import AuthConfigProblem, CredentialProvider, CredentialRegistry, ProviderContext
from ..config.secrets import SecretValue
from .tokens import Token, TokenFetchError, TokenSource

__all__ = [
    "AuthConfigProblem",
    "CredentialProvider",
    "CredentialRegistry",
    "ProviderContext",
    "SecretValue",
    "Token",
    "TokenFetchError",
    "TokenSource",
]
