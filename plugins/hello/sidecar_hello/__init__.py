"""sidecar-hello-plugin: adds ``x-hello: <greeting>`` to responses once a greeting is configured.

The smallest complete sidecar plugin: a config section validated by its own model
(``plugins.hello``), a filter placed in a phase of every chain, and an entry point in
``pyproject.toml``. It imports only from ``sidecar``, the public plugin API.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sidecar import (
    ConfigRegistry,
    Exchange,
    Filter,
    FilterRegistry,
    Handler,
    Phase,
    Response,
    RouteContext,
    hookimpl,
)

#: The plugin API major version this plugin is written for: another major refuses to load it.
SIDECAR_API = 1


class HelloConfig(BaseModel):
    """``plugins.hello``; ``extra="forbid"`` makes a misspelt key a start-up error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the ``x-hello`` value (printable ASCII: a header value cannot hold a line break);
    #: without one, installing the plugin changes no call.
    greeting: str | None = Field(default=None, pattern=r"^[ -~]+$")


def make_filter(ctx: RouteContext) -> Filter | None:
    """The ``hello`` filter of one route, or ``None`` (the route pays nothing) without a
    greeting."""
    # read the config once per route, when the chain is composed, never per request
    greeting = ctx.plugin_config("hello", HelloConfig).greeting
    if greeting is None:
        return None

    async def hello(exchange: Exchange, call_next: Handler) -> Response:
        response = await call_next(exchange)
        response.headers.add("x-hello", greeting)
        return response

    return hello


@hookimpl
def sidecar_declare_config(registry: ConfigRegistry) -> None:
    registry.add("hello", HelloConfig)


@hookimpl
def sidecar_register_filters(registry: FilterRegistry) -> None:
    # EXTEND (also the default): inside the admission decisions, so a refused call is not
    # greeted, and outside the retries, so a retried call is greeted once
    registry.add("hello", make_filter, phase=Phase.EXTEND)
