"""``rescue``: the one place errors become responses (outermost filter).

A :class:`~sidecar.errors.SidecarError` becomes its status with ``x-sidecar-error: <code>`` and a
one-line body; anything else is offered to the ``sidecar_rescue`` hook, then becomes a 500
``internal`` and is logged with the route, so a buggy filter never kills the process or the
connection. Cancellation (the app went away) is not an error and passes through.

How an error is answered is the front's (:attr:`~sidecar.api.FrontTraits.error_response`, read
once per chain): the HTTP fronts answer with the status; the gRPC front with the error's gRPC
code and ``x-sidecar-error`` in the trailing metadata (:func:`sidecar.grpc.wire.error_response`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..answers import error_response
from ..api import RouteContext
from ..chain import Filter
from ..errors import SidecarError
from ..exchange import Exchange, Response
from ..observing import Observing, Rescuer

log = logging.getLogger("sidecar.rescue")

RescueHook = Callable[[Exchange, BaseException], "Response | None"]
Blame = Callable[[BaseException], "dict[str, str] | None"]


def make_rescue(
    hook: RescueHook | None,
    route: str,
    blame: Blame | None = None,
    answer: Callable[[SidecarError], Response] = error_response,
) -> Filter:
    """The filter of one route (a rescuer: :mod:`sidecar.observing` fuses it with the
    observers right inside it, metrics and the access log, into one coroutine frame)."""
    return Observing((), _Rescue(hook, route, blame, answer))


class _Rescue(Rescuer):
    def __init__(
        self,
        hook: RescueHook | None,
        route: str,
        blame: Blame | None,
        answer: Callable[[SidecarError], Response],
    ) -> None:
        self.hook = hook
        self.route = route
        self.blame = blame
        self.answer = answer

    def rescued(self, exchange: Exchange, e: BaseException) -> Response:
        if isinstance(e, SidecarError):
            return self.answer(e)
        if isinstance(e, (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)):
            # the app went away, the process is being stopped, or the call's coroutine is
            # being closed: not an error, and nothing to answer
            raise e
        # SystemExit or a custom BaseException from a plugin: a bug
        hook = self.hook
        if hook is not None:
            try:
                resp = hook(exchange, e)
            except Exception:
                log.exception(
                    "a sidecar_rescue hook raised", extra={"fields": {"route": self.route}}
                )
                resp = None
            if resp is not None:
                return resp
        fields = {"route": self.route, "upstream": exchange.upstream}
        # name the plugin whose code raised (found from the traceback, only on this path)
        who = self.blame(e) if self.blame is not None else None
        if who:
            fields.update(who)
        log.error("unexpected error while handling a call", exc_info=e, extra={"fields": fields})
        return self.answer(SidecarError("unexpected error in the sidecar"))


def factory(ctx: RouteContext) -> Filter:
    return make_rescue(ctx.rescue_hook, ctx.route, ctx.blame, ctx.front.error_response)
