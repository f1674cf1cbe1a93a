"""Observing filters: filters that act only as a call enters and leaves them, fused into one
coroutine frame.

Most of a chain's outer filters never wait: ``metrics`` counts and times the call, the access
log writes its line, ``rescue`` turns an error into the app's answer, the local rate limit takes
a token or refuses, the concurrency limit (without a queue) takes a slot or refuses and gives it
back, ``timeout`` registers the call's deadline and turns its firing into a 504. Written as
coroutines, each adds a frame that every resumption of the call passes through (a call is
resumed when its upstream answers, and again for each body chunk it waits for). Written as an
:class:`Observer`, each is a few plain method calls instead, and :func:`sidecar.chain.compose`
fuses adjacent :class:`Observing` filters into one: one frame for all of them.

The fused filter runs exactly what the nested filters would: each observer's ``begin``
outermost first on the way in (one that raises refuses the call: the observers inside it never
begin, those outside it are told of the error), its ``ok`` or ``error`` innermost first on the
way back, and the rescuer (only ever the outermost, nothing sits outside ``rescue``) last. An
observer that raises on the way back (a bug, or a conversion) hands its error outward as a
nested filter's would: the observers outside it are told of that error, and the rescuer
answers it.

Not here: what each observer does (:mod:`sidecar.filters.metrics`,
:mod:`sidecar.filters.access_log`, :mod:`sidecar.filters.rescue`,
:mod:`sidecar.filters.rate_limit`, :mod:`sidecar.filters.concurrency`,
:mod:`sidecar.filters.timeout`). Plugins write ordinary
filters; these classes are compiled in a compiled build and not part of the plugin API.
"""

from __future__ import annotations

__all__ = ["Absorbing", "Observer", "ObserverOf", "Observing", "Rescuer", "RescuerOf"]

from collections.abc import Awaitable, Callable

from .exchange import Exchange, Response


class Observer:
    """Told when a call enters (and may refuse it then) and how it ended; never waits."""

    def begin(self, exchange: Exchange) -> None:
        """The call enters the filter (before anything inside it runs); raise to refuse it."""

    def ok(self, exchange: Exchange, resp: Response) -> None:
        """The rest of the chain answered ``resp`` (the head; the body may still stream)."""

    def error(self, exchange: Exchange, e: BaseException) -> None:
        """The rest of the chain raised ``e`` (a decision, a cancellation or a bug)."""


class Rescuer:
    """The outermost filter's answer to an error (``rescue``)."""

    def rescued(self, exchange: Exchange, e: BaseException) -> Response:
        """The response the app gets for ``e``, or raise (``e`` itself) to let it pass."""
        raise e


class ObserverOf(Observer):
    """An observer made of functions (a compiled class cannot be subclassed by interpreted
    code: tests, and code left as Python, build observers from functions instead)."""

    def __init__(
        self,
        begin: Callable[[Exchange], None] | None = None,
        ok: Callable[[Exchange, Response], None] | None = None,
        error: Callable[[Exchange, BaseException], None] | None = None,
    ) -> None:
        self._begin = begin
        self._ok = ok
        self._error = error

    def begin(self, exchange: Exchange) -> None:
        if self._begin is not None:
            self._begin(exchange)

    def ok(self, exchange: Exchange, resp: Response) -> None:
        if self._ok is not None:
            self._ok(exchange, resp)

    def error(self, exchange: Exchange, e: BaseException) -> None:
        if self._error is not None:
            self._error(exchange, e)


class RescuerOf(Rescuer):
    """A rescuer made of a function (see :class:`ObserverOf`)."""

    def __init__(self, rescued: Callable[[Exchange, BaseException], Response]) -> None:
        self._rescued = rescued

    def rescued(self, exchange: Exchange, e: BaseException) -> Response:
        return self._rescued(exchange, e)


class Observing:
    """A filter made of observers (outermost first) and, outermost of all, an optional rescuer.

    Callable as any filter. :meth:`fused` joins it with the observing filter right inside it.
    """

    def __init__(self, observers: tuple[Observer, ...], rescuer: Rescuer | None = None) -> None:
        self.observers = observers
        self.rescuer = rescuer

    def fused(self, inner: Observing) -> Observing | None:
        """This filter and ``inner`` (right inside it) as one, or ``None`` when they cannot be
        (``inner`` has a rescuer: it must stay outermost of what it rescues)."""
        if inner.rescuer is not None:
            return None
        return Observing(self.observers + inner.observers, self.rescuer)

    async def __call__(
        self, exchange: Exchange, call_next: Callable[[Exchange], Awaitable[Response]]
    ) -> Response:
        e = self.begin_all(exchange)
        if e is None:
            try:
                resp = await call_next(exchange)
            except BaseException as raised:
                e = self.fail_all(exchange, raised)
            else:
                e = self.finish_all(exchange, resp)
                if e is None:
                    return resp
        return self.rescue(exchange, e)

    # The steps of a call through the observers, for this filter and for a filter that runs
    # them in its own frame (:class:`Absorbing`). Each returns the error the call leaves with
    # (after the observers outside the one that raised were told), or ``None``.

    def begin_all(self, exchange: Exchange) -> BaseException | None:
        """Each ``begin``, outermost first; one that raises refuses the call."""
        began = 0  # observers whose begin ran (one that raised did not)
        try:
            for o in self.observers:
                o.begin(exchange)
                began += 1
        except BaseException as e:
            return self._unwind(exchange, e, began - 1)
        return None

    def finish_all(self, exchange: Exchange, resp: Response) -> BaseException | None:
        """Each ``ok``, innermost first; one that raises hands its error outward."""
        observers = self.observers
        at = len(observers) - 1
        try:
            while at >= 0:
                observers[at].ok(exchange, resp)
                at -= 1
        except BaseException as e:
            return self._unwind(exchange, e, at - 1)
        return None

    def fail_all(self, exchange: Exchange, e: BaseException) -> BaseException:
        """Each ``error``, innermost first."""
        return self._unwind(exchange, e, len(self.observers) - 1)

    def rescue(self, exchange: Exchange, e: BaseException) -> Response:
        """The answer for the error a call left the observers with: the rescuer's, or ``e``
        raised when there is no rescuer (or it lets ``e`` pass)."""
        rescuer = self.rescuer
        if rescuer is None:
            raise e
        return rescuer.rescued(exchange, e)

    def _unwind(self, exchange: Exchange, e: BaseException, start: int) -> BaseException:
        """``e`` passes observers ``start`` down to 0 (outward), as it would pass nested
        filters: one that raises while told hands its own error on."""
        observers = self.observers
        at = start
        while at >= 0:
            try:
                observers[at].error(exchange, e)
            except BaseException as raised:
                e = raised
            at -= 1
        return e


class Absorbing:
    """A filter that can run the observing filter right inside it in its own frame: ``retry``,
    whose every attempt passes the circuit breaker. ``build(inner)`` makes the filter with
    ``inner``'s steps inlined (``None``: plain); :func:`sidecar.chain.fuse` calls it.
    Called as is, it is the plain filter."""

    def __init__(self, build: Callable[[Observing | None], FilterFn]) -> None:
        self.build = build
        self.plain = build(None)

    def __call__(
        self, exchange: Exchange, call_next: Callable[[Exchange], Awaitable[Response]]
    ) -> Awaitable[Response]:
        return self.plain(exchange, call_next)


#: a filter, as :mod:`sidecar.chain` names it (spelled out: chain imports this module)
FilterFn = Callable[[Exchange, Callable[[Exchange], Awaitable[Response]]], Awaitable[Response]]
