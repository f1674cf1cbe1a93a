"""Plugin config sections: ``plugins.<name>`` and the pydantic models that validate them."""

from __future__ import annotations

__all__ = ["ConfigRegistry"]

from pydantic import BaseModel

from .registry import Registry


class ConfigRegistry(Registry[type[BaseModel]]):
    """``plugins.<name>`` sections and the models that validate them."""

    kind = "config section"

    def add(self, name: str, model: type[BaseModel]) -> None:
        self._add(name, model)
