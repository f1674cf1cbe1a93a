"""Configuration: the file's models, its loader and the value types it uses."""

from __future__ import annotations

from .loader import DEFAULT_CONFIG_NAME, load_config, parse_config, validate_plugin_sections
from .models import RouteConfig, SidecarConfig, UpstreamConfig
from .types import SecretRef

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "RouteConfig",
    "SecretRef",
    "SidecarConfig",
    "UpstreamConfig",
    "load_config",
    "parse_config",
    "validate_plugin_sections",
]
