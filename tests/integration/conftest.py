"""Fixtures shared by the integration modules: the container image, built once per session."""

from __future__ import annotations

from .image_build import image, podman

__all__ = ["image", "podman"]
