"""Configuration: the file's models, its loader and the value types it uses.

- :mod:`.source`: text → data (strict YAML, ``${ENV}`` substitution);
- :mod:`.models`: the frozen pydantic models of the file's shape (the whole file, and every
  section's model re-exported from :mod:`.listeners`, :mod:`.inbound`, :mod:`.upstreams`,
  :mod:`.routes`, :mod:`.telemetry`, :mod:`.shutdown`; names keys accept in :mod:`.names`);
- :mod:`.policies`: the resilience and credential policies upstreams and routes carry;
- :mod:`.types`: durations, sizes, addresses, header values, secret references;
- :mod:`.problems`: validation errors in plain English, with key paths;
- :mod:`.checks`: checks across keys, and secrets read once;
- :mod:`.loader`: all of it together, plus plugin sections;
- :mod:`.changes`: what a reload applies and what waits for a restart.
"""

from __future__ import annotations

from .loader import (
    DEFAULT_CONFIG_NAME,
    PluginSchemas,
    load_config,
    load_data,
    parse_config,
    validate_data,
    validate_plugin_sections,
)
from .models import RouteConfig, SidecarConfig, UpstreamConfig
from .types import SecretRef

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "PluginSchemas",
    "RouteConfig",
    "SecretRef",
    "SidecarConfig",
    "UpstreamConfig",
    "load_config",
    "load_data",
    "parse_config",
    "validate_data",
    "validate_plugin_sections",
]
