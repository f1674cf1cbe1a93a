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
from ..chain import Filter, Handler
from ..errors import SidecarError
from ..exchange import Exchange, Response

log = logging.getLogger("sidecar.rescue")

RescueHook = Callable[[Exchange, BaseException], "Response | None"]
Blame = Callable[[BaseException], "dict[str, str] | None"]


def make_rescue(
    hook: RescueHook | None,
    route: str,
    blame: Blame | None = None,
    answer: Callable[[SidecarError], Response] = error_response,
) -> Filter:

    async def rescue(exchange: Exchange, call_next: Handler) -> Response:
        try:
            return await call_next(exchange)
        except SidecarError as e:
            return answer(e)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise  # the app went away, or the process is being stopped: not an error
        except BaseException as e:  # SystemExit or a custom BaseException from a plugin: a bug
            if hook is not None:
                try:
                    resp = hook(exchange, e)
                except Exception:
                    log.exception(
                        "a sidecar_rescue hook raised", extra={"fields": {"route": route}}
                    )
                    resp = None
                if resp is not None:
                    return resp
            fields = {"route": route, "upstream": exchange.upstream}
            # name the plugin whose code raised (found from the traceback, only on this path)
            who = blame(e) if blame is not None else None
            if who:
                fields.update(who)
            log.error(
                "unexpected error while handling a call", exc_info=e, extra={"fields": fields}
            )
            return answer(SidecarError("unexpected error in the sidecar"))

    return rescue


def factory(ctx: RouteContext) -> Filter:
    return make_rescue(ctx.rescue_hook, ctx.route, ctx.blame, ctx.front.error_response)
