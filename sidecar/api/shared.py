"""Per-upstream state that every route of an upstream shares, under typed keys.

A circuit breaker, a rate limiter, a retry budget: one object per upstream, whichever route the
call took, kept across reloads while its settings stay equal. A filter factory asks for it with
``ctx.shared(KEY, settings, factory)``, where ``KEY`` is a module-level :class:`SharedKey`
naming the kind and the object's type, so whoever reads it back (``/upstreams``, health, the
admin API) gets that type, not ``Any``.

Composition builds a new :class:`SharedState` (:class:`SharedStateBuilder`), reusing each object
of the live one whose settings are equal; it replaces the live one only when the new route table
goes live, so a refused reload leaves the running state alone.
"""

from __future__ import annotations

__all__ = ["Held", "SharedKey", "SharedState", "SharedStateBuilder"]

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True, eq=False)
class SharedKey(Generic[T]):
    """The kind of one shared object (``SharedKey[CircuitBreaker]("circuit_breaker")``), made
    once at module level. The name is how ``/upstreams`` lists the object; two keys of one name
    are refused when both are used in one sidecar (two plugins would get each other's object)."""

    name: str


@dataclass(frozen=True, slots=True)
class Held(Generic[T]):
    """One shared object and the settings it was built from."""

    key: SharedKey[T]
    #: ``key.name``, or ``key.name@route`` for an object of one route (``route_scoped``).
    kind: str
    upstream: str
    settings: Hashable
    obj: T


class SharedState:
    """The shared objects of one route table, read by views (never per call)."""

    def __init__(self, held: dict[tuple[str, str], Held[Any]] | None = None) -> None:
        self._held = held or {}

    def get(self, key: SharedKey[T], upstream: str) -> T | None:
        """The object of kind ``key`` of ``upstream``, or ``None`` when none was built."""
        held = self._held.get((key.name, upstream))
        if held is None or held.key is not key:
            return None
        obj: T = held.obj
        return obj

    def __iter__(self) -> Iterator[Held[Any]]:
        return iter(list(self._held.values()))

    def of(self, upstream: str) -> list[Held[Any]]:
        """Every object of ``upstream``."""
        return [h for h in self._held.values() if h.upstream == upstream]

    def _find(self, name: str, upstream: str) -> Held[Any] | None:
        return self._held.get((name, upstream))


class SharedStateBuilder:
    """Collects the shared objects while one route table is composed."""

    def __init__(self, live: SharedState) -> None:
        self._live = live
        self._next: dict[tuple[str, str], Held[Any]] = {}
        #: the plugin whose factory is asking (set by the composition), for a clash's message
        self.owner = ""
        self._owners: dict[str, str] = {}

    def share(
        self,
        key: SharedKey[T],
        upstream: str,
        settings: Hashable,
        factory: Callable[[], T],
        route: str | None = None,
    ) -> T:
        """The object of kind ``key`` for ``upstream`` (for one ``route`` of it when given):
        the one already built (for this table, or the live one) while ``settings`` stay equal,
        else a new one from ``factory``."""
        kind = key.name if route is None else f"{key.name}@{route}"
        slot = (kind, upstream)
        have = self._next.get(slot) or self._live._find(kind, upstream)
        first = self._owners.setdefault(key.name, self.owner)
        if have is not None and have.key is not key:
            raise ValueError(
                f"two shared-state keys are named {key.name!r} (plugins {first!r} and "
                f"{self.owner!r}): give each kind of object its own SharedKey name, prefixed "
                f"with the plugin's name"
            )
        if have is not None and have.settings == settings:
            obj: T = have.obj
        else:
            obj = factory()
        self._next[slot] = Held(key, kind, upstream, settings, obj)
        return obj

    def build(self) -> SharedState:
        """The new table's state (the live one is not touched)."""
        return SharedState(dict(self._next))
