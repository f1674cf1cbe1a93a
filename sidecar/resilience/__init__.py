"""Resilience building blocks the policy filters are made of (no filters here, no config).

Each module is one mechanism with its own state, driven by a filter in :mod:`sidecar.filters`
and testable with an injected clock or random source: backoff and ``Retry-After``
(:mod:`.backoff`), the per-upstream retry budget (:mod:`.retry_budget`), which calls may be sent
twice (:mod:`.idempotency`), the request-body replay buffer (:mod:`.replay`) and the coarse timer
behind the deadline and per-try timeouts (:mod:`.deadlines`), with one attempt bounded by its
per-try timeout (:mod:`.per_try`). Circuit breaking
and concurrency limiting live beside them. Per-upstream objects are shared by all routes of the
upstream through ``RouteContext.shared`` and offer ``describe()`` for ``/upstreams``.
"""
