"""``aws_sigv4``: a sidecar credential provider signing an upstream's calls with AWS Signature
Version 4 (docs/aws_sigv4.md).

Upstreams use it with ``auth: {type: aws_sigv4, region: ..., service: ...}``; the keys come
from references (``access_key_id: {env: NAME}``), the standard ``AWS_*`` environment variables,
or the container credentials endpoint. It imports only from ``sidecar``, the public plugin API,
and nothing heavier than the standard library (aiohttp, the sidecar's own, only for the
container endpoint).
"""

from __future__ import annotations

__all__ = [
    "NAME",
    "SIDECAR_API",
    "AwsSigV4",
    "BodyTooLargeToSign",
    "Sigv4Settings",
    "sidecar_register_credentials",
    "sidecar_register_filters",
]

from sidecar import CredentialRegistry, FilterRegistry, Phase, hookimpl

from .guard import GUARD, guard_factory
from .provider import AwsSigV4, BodyTooLargeToSign
from .settings import Sigv4Settings

#: The plugin API major version this plugin is written for: another major refuses to load it.
SIDECAR_API = 1

#: the plugin's name: its entry point and the provider type (``auth: {type: aws_sigv4}``)
NAME = "aws_sigv4"


@hookimpl
def sidecar_register_credentials(registry: CredentialRegistry) -> None:
    registry.add(NAME, AwsSigV4)


@hookimpl
def sidecar_register_filters(registry: FilterRegistry) -> None:
    # composition-time check only: its factory always returns None (no filter on any chain)
    registry.add(GUARD, guard_factory, phase=Phase.EXTEND)
