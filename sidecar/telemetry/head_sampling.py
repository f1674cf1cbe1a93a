"""Whether a call is sampled, decided before any span exists, as the provider's sampler would.

The OpenTelemetry SDK decides when a span starts, so asking it costs a span start even for the
calls it then leaves out: with tracing on at 1 %, 99 calls in 100 would pay for nothing. The
tracing filters (:mod:`sidecar.filters.tracing`) decide first with :class:`HeadSampler`, read
once from the provider's own sampler (:func:`head_sampler`, by its description), and touch the
SDK only for a sampled call. The decision is the SDK's, bit for bit:

- parent-based: a remote parent's sampled flag decides (``ParentBased``'s defaults);
- otherwise (no parent, or a sampler that is not parent-based) the root decides on the trace id:
  ``TraceIdRatioBased`` samples when the id's low 64 bits are below its bound; always-on and
  always-off are the bounds ``2**64`` and ``0``.

A new trace's id is drawn here (:func:`new_trace_id`), so the decision can be made on it; a
sampled call then hands it to the SDK through :class:`DecidedTraceIds`, the provider's id
generator, so its root span is in the trace that was decided on. Not here: reading and writing
``traceparent`` (:mod:`.trace_context`), building the provider (:mod:`.tracing`).
"""

from __future__ import annotations

__all__ = ["DecidedTraceIds", "HeadSampler", "head_sampler", "new_span_id", "new_trace_id"]

import re
from dataclasses import dataclass
from random import getrandbits

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Sampler, TraceIdRatioBased

#: The part of a trace id ``TraceIdRatioBased`` compares with its bound.
LOW_64 = (1 << 64) - 1
_ALL = 1 << 64  # a bound every id is below

# ParentBased with the default delegates for a parent: follow its sampled flag
_PARENT_BASED = re.compile(
    r"ParentBased\{root:(.*),remoteParentSampled:AlwaysOnSampler,"
    r"remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
    r"localParentNotSampled:AlwaysOffSampler\}"
)
_RATIO = re.compile(r"TraceIdRatioBased\{(.*)\}")


@dataclass(frozen=True, slots=True)
class HeadSampler:
    """A sampler's decision as two numbers: whether a parent's flag decides, and the bound."""

    #: whether a call with a parent follows the parent's sampled flag.
    parent_based: bool
    #: a trace the root decides on is sampled when its id's low 64 bits are below this.
    bound: int

    def new_trace(self, trace_id: int) -> bool:
        """Whether a new trace with id ``trace_id`` is sampled."""
        return trace_id & LOW_64 < self.bound

    def continued(self, trace_hex: str, flags: int) -> bool:
        """Whether a call continuing trace ``trace_hex`` (32 lower-case hex digits) from a
        remote parent with ``flags`` is sampled."""
        if self.parent_based:
            return bool(flags & 1)
        return int(trace_hex[16:], 16) < self.bound


def head_sampler(sampler: Sampler) -> HeadSampler:
    """The :class:`HeadSampler` making ``sampler``'s decisions.

    Reads the samplers ``OTEL_TRACES_SAMPLER`` names (the only ones the sidecar builds); raises
    :class:`ValueError` for any other, whose decision could not be made without the SDK.
    """
    description = sampler.get_description()
    m = _PARENT_BASED.fullmatch(description)
    parent_based = m is not None
    bound = _root_bound(m.group(1) if m is not None else description)
    if bound is None:
        raise ValueError(f"no head decision for the sampler {description}")
    return HeadSampler(parent_based, bound)


def _root_bound(description: str) -> int | None:
    if description == "AlwaysOnSampler":
        return _ALL
    if description == "AlwaysOffSampler":
        return 0
    m = _RATIO.fullmatch(description)
    if m is None:
        return None
    try:
        rebuilt = TraceIdRatioBased(float(m.group(1)))
    except ValueError:
        return None
    # the same rate, so the same bound: a float's repr reads back exactly
    return rebuilt.bound if rebuilt.get_description() == description else None


def new_trace_id() -> int:
    """A random, valid (non-zero) 128-bit trace id, as the SDK's ``RandomIdGenerator`` draws."""
    trace_id = getrandbits(128)
    while not trace_id:
        trace_id = getrandbits(128)
    return trace_id


def new_span_id() -> int:
    """A random, valid (non-zero) 64-bit span id."""
    span_id = getrandbits(64)
    while not span_id:
        span_id = getrandbits(64)
    return span_id


class DecidedTraceIds(RandomIdGenerator):
    """The provider's id generator: random ids, except that the next root span started after
    :meth:`use` gets the trace id that call's sampling was decided on.

    Spans are started on the event loop thread only, and :meth:`use` is followed at once (no
    ``await`` between) by the span start that consumes it.
    """

    def __init__(self) -> None:
        self._next = 0

    def use(self, trace_id: int) -> None:
        """Make ``trace_id`` the id of the next new trace."""
        self._next = trace_id

    def generate_trace_id(self) -> int:
        trace_id = self._next
        if trace_id:
            self._next = 0
            return trace_id
        return super().generate_trace_id()
