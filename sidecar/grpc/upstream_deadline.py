"""The timeout a call to a gRPC upstream is given, so that the deadline the upstream sees is
never later than the call's own (``exchange.deadline``).

grpcio takes a timeout in seconds and sends it as ``grpc-timeout``, rounded **up** twice: its
clock keeps milliseconds (the deadline rounded up, the time it is sent from rounded down: up to
:data:`GRPCIO_SLACK_MS` more), and the header has a coarse grid, rounded up onto it: whole
milliseconds below 1 s, 10 ms steps below 10 s, 100 ms steps below 100 s, whole seconds above.
Passing what is left of the deadline as it is let the upstream's deadline land up to ~10 ms
(1–10 s left) or ~100 ms (10–100 s) after the app's, once per hop.

:func:`upstream_timeout` rounds **down** instead: what is left, less a millisecond for the time
between this computation and grpcio's sending of the header, down to a point of the header's
grid; then it takes off grpcio's own slack, so that grpcio's rounding up lands on that point,
never past it. The upstream gets up to one grid step (plus 3 ms) less than the app had left.

Not here: where the deadline comes from (the front: the app's ``grpc-timeout``; the ``timeout``
filter shortens it) nor the call itself (:mod:`.upstream_call`).
"""

from __future__ import annotations

__all__ = ["GRPCIO_SLACK_MS", "SEND_MARGIN_MS", "header_grid_ms", "upstream_timeout"]

#: how far grpcio's millisecond clock may round a timeout up before it encodes it.
GRPCIO_SLACK_MS = 2
#: time allowed between computing the timeout and grpcio sending the call's headers.
SEND_MARGIN_MS = 1


def header_grid_ms(ms: int) -> int:
    """The step of ``grpc-timeout``'s grid for a timeout of ``ms`` milliseconds (grpcio's
    encoder: three significant digits, then whole seconds)."""
    if ms < 1_000:
        return 1
    if ms < 10_000:
        return 10
    if ms < 100_000:
        return 100
    if ms < 1_000_000:
        return 1_000
    if ms < 10_000_000:
        return 10_000
    return 100_000


def upstream_timeout(remaining: float) -> float | None:
    """Seconds to hand grpcio for a call with ``remaining`` seconds left (loop time, taken just
    before the call), so that the ``grpc-timeout`` it sends is at most what is left when it
    sends it; ``None`` when too little is left to send a call at all (under ~4 ms)."""
    ms = int(remaining * 1000) - SEND_MARGIN_MS  # int(): rounded down
    if ms <= GRPCIO_SLACK_MS:
        return None
    point = ms - ms % header_grid_ms(ms)
    timeout_ms = point - GRPCIO_SLACK_MS
    if timeout_ms <= 0:
        return None
    return timeout_ms / 1000
