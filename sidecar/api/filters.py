"""The registry of filter factories and their places in every chain."""

from __future__ import annotations

__all__ = ["FilterRegistry", "code_of"]

import functools
import inspect
from types import CodeType
from typing import TYPE_CHECKING

from .context import FilterFactory, RouteContext
from .phases import Phase, phase_of, phase_range
from .registry import Registration, Registry

if TYPE_CHECKING:
    from ..chain import Filter


def code_of(obj: object) -> CodeType | None:
    """The code object that runs when ``obj`` is called (function, partial or callable object)."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    code = getattr(obj, "__code__", None)
    if code is None:
        code = getattr(inspect.getattr_static(type(obj), "__call__", None), "__code__", None)
    return code if isinstance(code, CodeType) else None


def _place_in(phase: Phase) -> int:
    """Where a filter given only its phase sits: after the built-ins of the phase (the
    innermost place of it), so it never runs outside the access log in ``OBSERVE`` or before
    the credential in ``ATTEMPT``; ``EXTEND``, which has no built-ins, at its start."""
    if phase == Phase.EXTEND:
        return int(phase)
    return phase_range(phase).stop - 1


class FilterRegistry(Registry[FilterFactory]):
    """Filter factories and their places in the chain (:mod:`sidecar.api.phases`)."""

    kind = "filter"

    def __init__(self) -> None:
        super().__init__()
        #: code of each filter a factory built → (plugin, filter name). Filled as chains are
        #: composed, read only when a call failed; closures share code, so it stays small.
        self.code_owners: dict[CodeType, tuple[str, str]] = {}
        # name → ("after" | "before", other filter's name), resolved once all registered
        self._relative: dict[str, tuple[str, str]] = {}

    def add(
        self,
        name: str,
        factory: FilterFactory,
        order: int | None = None,
        *,
        phase: Phase | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> None:
        """Register ``factory`` as filter ``name``: in ``phase`` (default ``Phase.EXTEND``),
        inside every built-in filter of that phase; or right ``after``/``before`` another filter
        (by name, in that filter's phase); or at a raw ``order`` inside a phase's range
        (built-ins; plugins name a phase)."""
        given = [x for x in (order, phase, after, before) if x is not None]
        if len(given) > 1:
            raise ValueError(f"filter {name!r}: give one of order, phase, after or before")
        if phase is not None and not isinstance(phase, Phase):
            raise ValueError(f"filter {name!r}: phase={phase!r} is not a sidecar.Phase")
        if order is not None and (isinstance(order, bool) or not isinstance(order, int)):
            raise ValueError(f"filter {name!r}: order={order!r} is not a whole number")
        place = order if order is not None else _place_in(phase or Phase.EXTEND)
        if not 0 <= place < 1000:
            raise ValueError(f"filter {name!r}: order {place} is outside every phase (0-999)")
        if after is not None:
            self._relative[name] = ("after", after)
        elif before is not None:
            self._relative[name] = ("before", before)
        self._add(name, self._recording(name, factory), place)

    def _recording(self, name: str, factory: FilterFactory) -> FilterFactory:
        owner, codes = self.owner, self.code_owners

        @functools.wraps(factory)
        def build(ctx: RouteContext) -> Filter | None:
            f = factory(ctx)
            if f is not None:
                code = code_of(f)
                if code is not None:
                    codes[code] = (owner, name)
            return f

        return build

    def ordered(self) -> list[Registration[FilterFactory]]:
        """The registrations outermost first (ties: registration order). A filter placed
        ``after``/``before`` another sits right next to it, also when that one is itself placed
        next to a third; a filter named that no plugin registered, or a circle of placements,
        is refused naming the filters."""
        seqs = {name: seq for seq, name in enumerate(self._items)}
        keys: dict[str, tuple[int, ...]] = {}

        def key(name: str, placing: tuple[str, ...]) -> tuple[int, ...]:
            # (order, seq, 0) for a filter placed by order; the key of the filter it is placed
            # next to, extended by (+1 | -1, seq, 0), for one placed after or before it: so it
            # sorts right next to that one, and the 0 keeps "before" ahead of it
            if name in keys:
                return keys[name]
            reg = self._items[name]
            relative = self._relative.get(name)
            if relative is None:
                found: tuple[int, ...] = (reg.order, seqs[name], 0)
            else:
                side, other = relative
                if other not in self._items:
                    raise ValueError(
                        f"filter {name!r} (plugin {reg.owner!r}) is placed {side} "
                        f"{other!r}, which no plugin registered"
                    )
                if other in placing:
                    circle = " -> ".join((*placing, other))
                    raise ValueError(f"filters placed next to each other in a circle: {circle}")
                step = 1 if side == "after" else -1
                found = (*key(other, (*placing, other))[:-1], step, seqs[name], 0)
            keys[name] = found
            return found

        placed = []
        for name, reg in self._items.items():
            k = key(name, (name,))
            placed.append((k, Registration(reg.name, reg.item, reg.owner, k[0])))
        placed.sort(key=lambda pair: pair[0])
        return [reg for _, reg in placed]

    def placement(self, name: str) -> str:
        """``", after peer_allow"`` for a filter placed next to another, ``""`` otherwise (what
        ``sidecar plugins`` adds to the order it prints)."""
        relative = self._relative.get(name)
        return f", {relative[0]} {relative[1]}" if relative is not None else ""

    def phase(self, name: str) -> Phase:
        """The phase filter ``name`` runs in."""
        return phase_of(self._items[name].order)
