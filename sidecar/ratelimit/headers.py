"""The response fields of a rate-limited call: ``Retry-After`` and the IETF ``RateLimit-*``.

The syntax is draft-ietf-httpapi-ratelimit-headers-10 (the same since -08): structured fields
naming the policy,

    RateLimit-Policy: "local";q=100;w=1
    RateLimit: "local";r=0;t=3

where ``q`` is the policy's quota of calls per window of ``w`` seconds (the configured rate:
``100/s`` → ``q=100;w=1``, ``1000/min`` → ``q=1000;w=60``; sub-second rates are scaled to one
second), ``r`` the calls left (0: this one was refused) and ``t`` the seconds until one will be
allowed (the same as ``Retry-After``). The policy names are ``local`` (``rate_limit``) and
``global`` (``global_rate_limit``). The key a bucket counts is never sent (no ``pk``): it may be
a credential. Sent on 429 answers only, so admitted calls pay nothing.
"""

from __future__ import annotations

__all__ = ["limited_headers", "policy_field"]

import math

from ..config.policies import RateValue


def policy_field(name: str, rate: RateValue) -> str:
    """``RateLimit-Policy`` for ``rate`` (built once per route)."""
    quota, window = rate.requests, rate.period
    if window < 1.0:  # w is whole seconds
        quota, window = quota / window, 1.0
    return f'"{name}";q={math.floor(quota)};w={math.floor(window)}'


def limited_headers(name: str, policy: str, wait: float) -> tuple[tuple[str, str], ...]:
    """The fields of a 429 whose next call is allowed in ``wait`` seconds."""
    seconds = str(max(1, math.ceil(wait)))
    return (
        ("retry-after", seconds),
        ("ratelimit-policy", policy),
        ("ratelimit", f'"{name}";r=0;t={seconds}'),
    )
