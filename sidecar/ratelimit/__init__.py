"""Rate limiting: token buckets for local limits, backends for limits shared by replicas.

- :mod:`.bucket`: :class:`TokenBucket` / :class:`TokenBuckets` (GCRA form, keyed, LRU-bounded);
- :mod:`.backend`: the :class:`RateLimitBackend` base class plugins subclass, :class:`Limit`,
  :class:`Decision`, and the :class:`RateLimitBackendRegistry` the
  ``sidecar_register_ratelimit_backends`` hook fills;
- :mod:`.guard`: the time budget, fail-open/closed and outage rules every backend gets;
- :mod:`.live`: the backends of one running sidecar (opened at start, closed at drain);
- :mod:`.local_backend`, :mod:`.redis_backend`: the built-in ``local`` and ``redis`` types,
  registered by the built-in plugin :mod:`.plugin`.

Not here: the filters that apply limits to calls (:mod:`sidecar.filters.rate_limit`,
:mod:`sidecar.filters.global_rate_limit`).
"""

from __future__ import annotations

from ..api import Decision, Limit, RateLimitBackend, RateLimitBackendRegistry
from .bucket import TokenBucket, TokenBuckets

__all__ = [
    "Decision",
    "Limit",
    "RateLimitBackend",
    "RateLimitBackendRegistry",
    "TokenBucket",
    "TokenBuckets",
]
