"""A sidecar filter plugin: tags responses with a header, and can refuse calls lacking one.

Its config section is ``plugins.jwt``,
validated by ``FilterConfig``.
Installed without it, the plugin changes no call: the factory returns ``None`` and no route
pays for the filter. It imports only from ``sidecar``, the public plugin API.
"""

from __future__ import annotations

from pydantic import Field
from sidecar import (
    ConfigRegistry,
    Exchange,
    Filter,
    FilterRegistry,
    Handler,
    Model,
    Phase,
    Response,
    RouteContext,
    SidecarError,
    hookimpl,
)

#: The plugin API major version this plugin is written for: another major refuses to load it.
SIDECAR_API = 1

#: the plugin's name: its entry point, its config section and its filter's name
NAME = "jwt"
#: the response header the tag is sent in
TAG_HEADER = "x-jwt"
#: the ``x-sidecar-error`` code of a refused call
REFUSED = "jwt_refused"
#: a header name as HTTP allows it (token characters)
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"


class FilterConfig(Model):
    """The section ``plugins.<NAME>``: frozen; a misspelt key is refused at its key path."""

    #: the value of the response header TAG_HEADER (printable ASCII, no line breaks); none:
    #: responses are not tagged.
    tag: str | None = Field(default=None, pattern=r"^[ -~]+$", max_length=256)
    #: a request header every call must carry; a call without it is refused with 403 before
    #: it reaches the upstream. None: nothing is refused.
    require_header: str | None = Field(default=None, pattern=HEADER_NAME, max_length=128)


class MissingHeader(SidecarError):
    """A call without the required header: the app gets ``403`` and ``x-sidecar-error``
    says :data:`REFUSED` (``PERMISSION_DENIED`` over gRPC)."""

    status, grpc_code, code = 403, 7, REFUSED


def make_filter(ctx: RouteContext) -> Filter | None:
    """The filter of one route, or ``None`` when nothing is configured."""
    # the config is read once per route, when the chain is composed, never per call
    config = ctx.plugin_config(NAME, FilterConfig)
    tag = config.tag
    required = config.require_header.lower() if config.require_header else None
    if tag is None and required is None:
        return None

    async def check_and_tag(exchange: Exchange, call_next: Handler) -> Response:
        if required is not None and required not in exchange.headers:
            # the message names the header, never a value the app sent
            raise MissingHeader(f"the call has no {required} header")
        response = await call_next(exchange)
        if tag is not None:
            response.headers.set(TAG_HEADER, tag)
        return response

    return check_and_tag


@hookimpl
def sidecar_declare_config(registry: ConfigRegistry) -> None:
    registry.add(NAME, FilterConfig)


@hookimpl
def sidecar_register_filters(registry: FilterRegistry) -> None:
    # EXTEND: inside the admission decisions (a call refused by a rate limit never reaches
    # it) and outside the retries (a retried call is checked and tagged once)
    registry.add(NAME, make_filter, phase=Phase.EXTEND)
