"""The base of every registry a registration hook fills.

A registry records, for every name, what was registered and which plugin registered it; a second
registration of a name raises :class:`~sidecar.errors.RegistryConflict` naming both owners (tox's
``register.add_run_env`` habit). The plugin host sets :attr:`Registry.owner` before it calls each
plugin's hook and closes the registries once every plugin was called, so nothing registers while
serving. Plugins that offer their own extension point (a pub/sub plugin's broker backends)
subclass :class:`Registry` the same way the sidecar's registries do.
"""

from __future__ import annotations

__all__ = ["Registration", "Registry"]

from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from ..errors import RegistryConflict

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Registration(Generic[T]):
    """One registered item: its name, the item, the plugin that added it, and its place
    (``order``; only filters use it)."""

    name: str
    item: T
    owner: str
    order: int = 0


class Registry(Generic[T]):
    """Items by name, each with its owner. Subclasses add a typed ``add`` that calls
    :meth:`_add` (and checks what it is given)."""

    #: what one item is called in error messages (``"filter"``, ``"adapter"``).
    kind: ClassVar[str] = "item"

    def __init__(self) -> None:
        #: the plugin whose hook is being called; set by the plugin host.
        self.owner = "<unknown>"
        self.closed = False
        self._items: dict[str, Registration[T]] = {}

    def _add(self, name: str, item: T, order: int = 0) -> None:
        if self.closed:
            raise RuntimeError(
                f"{self.kind} {name!r}: registries are filled only inside registration hooks"
            )
        prior = self._items.get(name)
        if prior is not None:
            raise RegistryConflict(
                f"{self.kind} {name!r} registered twice: by plugin {prior.owner!r} "
                f"and by plugin {self.owner!r}"
            )
        self._items[name] = Registration(name, item, self.owner, order)

    def close(self) -> None:
        """Refuse any later ``add`` (called once every plugin registered)."""
        self.closed = True

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> T:
        return self._items[name].item

    def registrations(self) -> list[Registration[T]]:
        """Every registration, in the order the plugins made them."""
        return list(self._items.values())

    def by_owner(self, owner: str) -> list[Registration[T]]:
        """What plugin ``owner`` registered here."""
        return [r for r in self._items.values() if r.owner == owner]
