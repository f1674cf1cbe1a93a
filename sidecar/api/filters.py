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
        """The registrations outermost first (ties: registration order)."""
        keyed: list[tuple[tuple[int, int, int], Registration[FilterFactory]]] = []
        for seq, reg in enumerate(self._items.values()):
            relative = self._relative.get(reg.name)
            if relative is None:
                keyed.append(((reg.order, 0, seq), reg))
                continue
            side, other = relative
            target = self._items.get(other)
            if target is None:
                raise ValueError(
                    f"filter {reg.name!r} (plugin {reg.owner!r}) is placed {side} "
                    f"{other!r}, which no plugin registered"
                )
            placed = Registration(reg.name, reg.item, reg.owner, target.order)
            keyed.append(((target.order, 1 if side == "after" else -1, seq), placed))
        keyed.sort(key=lambda pair: pair[0])
        return [reg for _, reg in keyed]

    def phase(self, name: str) -> Phase:
        """The phase filter ``name`` runs in."""
        return phase_of(self._items[name].order)
