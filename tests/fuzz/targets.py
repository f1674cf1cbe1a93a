"""The fuzz targets: plain functions taking ``bytes``, for atheris (``scripts/fuzz``), the
corpus replay and the property tests alike.

Each returns when the input was handled as documented and raises
:class:`~tests.fuzz.common.PropertyBroken` when a property fails; any other exception out of a
target is a crash of the code under test. The corpus of each is under
``tests/fuzz/corpus/<name>/`` (docs/fuzzing.md says what each checks and what was found).
"""

from __future__ import annotations

from collections.abc import Callable

from .common import PropertyBroken
from .config_loader import config_target
from .grpc_h2 import h2_target
from .headers import headers_target
from .http_listener import listener_target
from .routing import routing_target
from .upstream_response import upstream_target

__all__ = ["TARGETS", "PropertyBroken"]

#: name → target; the name is the corpus directory and the ``scripts/fuzz`` argument
TARGETS: dict[str, Callable[[bytes], None]] = {
    "http_request": listener_target,
    "upstream_response": upstream_target,
    "grpc_h2": h2_target,
    "routing": routing_target,
    "headers": headers_target,
    "config": config_target,
}
