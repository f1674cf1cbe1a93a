"""What one bucket counts: the ``key`` of a rate-limit policy, turned into a function once.

``upstream``: every call of the upstream shares one bucket; ``route``: one per route; ``peer``:
one per app address (the IP, without the port); ``header:<name>``: one per value of the header
(a missing header is one more value, the empty one). Header values are hashed before they become
keys when ``hash_values`` is set (global limits: a value may be a credential and must not be
written to Redis) or when they are long (local limits: bounded memory per key). Not here: the
bound on the number of keys (:class:`~sidecar.ratelimit.TokenBuckets`).
"""

from __future__ import annotations

__all__ = ["KeyOf", "key_function"]

import hashlib
from collections.abc import Callable

from ..exchange import Exchange

#: ``exchange -> key``; a plain ``str`` when the key does not depend on the call.
KeyOf = Callable[[Exchange], str] | str

#: header values longer than this are hashed even for local buckets
_LONG = 64


def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode("utf-8", "replace"), digest_size=16).hexdigest()


def key_function(key: str, route: str, *, hash_values: bool = False) -> KeyOf:
    """The key of a call under policy key ``key`` on route ``route`` (built at compose time)."""
    if key == "upstream":
        return ""
    if key == "route":
        return route
    if key == "peer":
        return _peer
    name = key.partition(":")[2].lower()
    if hash_values:

        def hashed(exchange: Exchange) -> str:
            return _digest(exchange.headers.get(name) or "")

        return hashed

    def header(exchange: Exchange) -> str:
        value = exchange.headers.get(name) or ""
        return value if len(value) <= _LONG else _digest(value)

    return header


def _peer(exchange: Exchange) -> str:
    # "ip:port" (IPv6 without brackets): the port goes, the address stays
    return exchange.client.rpartition(":")[0]
