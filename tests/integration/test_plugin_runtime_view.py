"""What a plugin's lifespan sees of a running sidecar: its typed config section."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

import sidecar
from sidecar import hookimpl
from sidecar.testing import running_sidecar

pytestmark = pytest.mark.integration


class Greeting(sidecar.Model):
    text: str = "hi"


async def test_a_lifespan_reads_its_typed_section_from_the_runtime_view() -> None:
    """``runtime.plugin_config(name, Model)`` in a lifespan is the validated section."""
    seen: list[str] = []

    class Lives:
        name = "greeter"

        @hookimpl
        def sidecar_declare_config(self, registry: sidecar.ConfigRegistry) -> None:
            registry.add("greeter", Greeting)

        @hookimpl
        def sidecar_register_lifespans(self, registry: sidecar.LifespanRegistry) -> None:
            @asynccontextmanager
            async def life(runtime: sidecar.RuntimeView) -> AsyncIterator[None]:
                seen.append(runtime.plugin_config("greeter", Greeting).text)
                yield

            registry.add("greeter", life)

    config = {"upstreams": {}, "plugins": {"greeter": {"text": "from the file"}}}
    async with running_sidecar(config, plugins=[Lives()]):
        assert seen == ["from the file"]
