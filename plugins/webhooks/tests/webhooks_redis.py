"""The webhooks tests' ``redis-server``: ``sidecar.testing.RedisServer``, a free port on
127.0.0.1, stopped by its PID; ``persistent=True`` keeps an append-only file fsynced at every
write (what the Redis queue relies on), so ``kill()`` then ``start()`` comes back with its data.
A machine without redis-server fails the test that needs it (never skips)."""

from __future__ import annotations

from sidecar.testing import RedisServer

__all__ = ["RedisServer"]
