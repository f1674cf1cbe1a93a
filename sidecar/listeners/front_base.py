"""What the built-in fronts share: a front around one listener, and configured routes.

:class:`ListenerFront` forwards the lifecycle of the :class:`~sidecar.api.Front` protocol to a
listener bound to a configured address; :func:`explicit_routes` composes the config's ``routes``
for the upstreams a front serves. Not here: what each front routes (:mod:`.fronts`,
:mod:`sidecar.grpc.front`).
"""

from __future__ import annotations

__all__ = ["ListenerFront", "explicit_routes"]

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from ..api.fronts import AppActivity
from ..config.types import split_address
from ..routing import ExplicitRoute, Route

if TYPE_CHECKING:
    from ..api import FrontTraits, RouteBuilder
    from ..chain import Handler
    from ..config.models import UpstreamConfig


class Listener(Protocol):
    """A listening server as the fronts drive it."""

    async def start(self, host: str, port: int) -> None: ...

    @property
    def port(self) -> int: ...

    def hold_for_app(self) -> None: ...

    def stop_accepting(self) -> None: ...

    async def drain(self, grace: float) -> int: ...

    def app_activity(self) -> AppActivity: ...


L = TypeVar("L", bound=Listener)


class ListenerFront(Generic[L]):
    """A front whose calls arrive on one listener bound to ``address`` (``host:port``)."""

    faces: Literal["app", "peers"] = "app"
    listener: L

    def __init__(self, address: str) -> None:
        self._host = split_address(address)[0]
        self._address = address

    def upstreams(self, routes: Any) -> Mapping[str, UpstreamConfig]:
        return {}

    async def start(self) -> None:
        host, port = split_address(self._address)
        await self.listener.start(host, port)

    @property
    def port(self) -> int:
        return self.listener.port

    @property
    def address(self) -> str:
        return f"{self._host}:{self.port}"

    def hold_for_app(self) -> None:
        self.listener.hold_for_app()

    def stop_accepting(self) -> None:
        self.listener.stop_accepting()

    async def drain(self, grace: float) -> int:
        return await self.listener.drain(grace)

    def app_activity(self) -> AppActivity:
        return self.listener.app_activity()


def explicit_routes(
    builder: RouteBuilder, front: FrontTraits, terminals: Mapping[str, Handler]
) -> list[ExplicitRoute]:
    """The config's ``routes`` to the upstreams in ``terminals`` (the front's), composed for
    ``front``; a route to another front's upstream is left to that front. Unnamed routes are
    ``route-<index in the file>``."""
    out = []
    for i, rc in enumerate(builder.config.routes):
        terminal = terminals.get(rc.upstream)
        if terminal is None:
            continue
        name = rc.name or f"route-{i}"
        handler = builder.chain(front, name, rc.upstream, terminal, route_config=rc)
        out.append(ExplicitRoute.of(Route(name, rc.upstream, handler), rc))
    return out
