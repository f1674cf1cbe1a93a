"""A module imported by the first attribute read, not where it is named.

For modules whose functions use a big library only when they run (the admin port's handlers
and aiohttp): ``web = deferred("aiohttp.web")`` at module level costs nothing, and the first
``web.Response`` imports aiohttp. Type checkers see the real import under ``TYPE_CHECKING``.
Not a general lazy-import hook: nothing in ``sys.modules`` changes until the import is real.
"""

from __future__ import annotations

__all__ = ["Deferred", "deferred"]

import importlib
from types import ModuleType
from typing import Any


class Deferred:
    """Stands for the module ``name``; each attribute read is the real module's."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:  # the first read imports; later ones skip the import machinery
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<deferred module {self._name!r}>"


def deferred(name: str) -> Any:
    """A stand-in for the module ``name``, imported when an attribute is first read."""
    return Deferred(name)
