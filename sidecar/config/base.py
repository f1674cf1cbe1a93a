"""The base of every config section: frozen, and unknown keys are errors."""

from __future__ import annotations

__all__ = ["Model"]

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Base of every config section: frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)
