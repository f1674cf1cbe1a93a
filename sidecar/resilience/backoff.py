"""How long to wait before a retry: full-jitter exponential backoff, or the upstream's
``Retry-After``.

Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): retry ``n`` (1 for the
first retry) waits ``uniform(0, min(cap, base · 2ⁿ⁻¹))``. Spreading the whole interval, instead of
adding a little noise to a fixed delay, is what keeps many clients that failed together from
coming back together. Not here: whether to retry at all (:mod:`sidecar.filters.retry`).
"""

from __future__ import annotations

__all__ = ["FullJitterBackoff", "parse_retry_after"]

import random
import re
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Final

_SECONDS: Final = re.compile(r"^[0-9]{1,10}(?:\.[0-9]{1,9})?$")
#: Past this many doublings the cap always wins; bounding the exponent keeps ``2**n`` small.
_MAX_DOUBLINGS: Final = 32


class FullJitterBackoff:
    """``delay(n)`` for retry ``n``: uniform in ``[0, min(cap, base · 2ⁿ⁻¹))``."""

    __slots__ = ("base", "cap", "rand")

    def __init__(self, base: float, cap: float, rand: Callable[[], float] = random.random) -> None:
        self.base = base
        self.cap = cap
        #: ``[0, 1)`` uniform source; tests pass a fixed one.
        self.rand = rand

    def ceiling(self, retry: int) -> float:
        """The upper bound of retry ``retry``'s wait (before jitter)."""
        return min(self.cap, self.base * (1 << min(max(retry - 1, 0), _MAX_DOUBLINGS)))

    def delay(self, retry: int) -> float:
        return self.rand() * self.ceiling(retry)


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 §10.2.3), or ``None`` if invalid.

    ``value`` is delay-seconds (``"120"``; a fraction such as ``"0.5"`` is accepted too, as some
    servers send it) or an HTTP-date; ``now`` is the wall-clock time (``time.time()``) a date is
    measured from. A date in the past means "now" (0).
    """
    text = value.strip()
    if not text:
        return None
    if _SECONDS.match(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP-date is always GMT; a date without a zone is not one
    return max(when.timestamp() - now, 0.0)
