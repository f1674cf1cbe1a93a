"""The sampling decision the tracing filters make before any span exists: the same as the
provider's sampler for every sampler the sidecar builds, for new traces and continued ones."""

from __future__ import annotations

import random

import pytest
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from sidecar.telemetry.head_sampling import (
    LOW_64,
    DecidedTraceIds,
    HeadSampler,
    head_sampler,
    new_span_id,
    new_trace_id,
)
from sidecar.telemetry.trace_context import EMPTY
from sidecar.telemetry.tracing_sdk import make_sampler
from sidecar.telemetry.tracing_settings import SAMPLERS

RATIOS = [0.0, 1e-9, 0.01, 0.25, 0.5, 0.999, 1.0]


def trace_ids(head: HeadSampler, count: int = 3000) -> list[int]:
    """Random ids, and the ids on either side of the bound (high bits set: only the low 64
    count)."""
    rng = random.Random(7)
    edges = [head.bound - 1, head.bound, head.bound + 1, LOW_64, 1]
    high = [(rng.getrandbits(64) << 64) | e for e in edges if 0 < e <= LOW_64]
    return [rng.getrandbits(128) or 1 for _ in range(count)] + high


def remote(trace_id: int, flags: int) -> object:
    span = SpanContext(trace_id, 0x1234, is_remote=True, trace_flags=TraceFlags(flags))
    return set_span_in_context(NonRecordingSpan(span), EMPTY)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("ratio", RATIOS)
def test_a_new_trace_is_sampled_exactly_when_the_sdk_would(name: str, ratio: float) -> None:
    """For the same trace ids the head decision is the SDK sampler's, so operators get the
    ratio they configured and every hop using the same ratio agrees."""
    sdk = make_sampler(name, ratio)
    head = head_sampler(sdk)
    for trace_id in trace_ids(head):
        expected = sdk.should_sample(EMPTY, trace_id, "GET up").decision.is_sampled()
        assert head.new_trace(trace_id) is expected, (name, ratio, hex(trace_id))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("ratio", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("flags", [0x00, 0x01, 0x02, 0x03])
def test_a_continued_trace_is_sampled_exactly_when_the_sdk_would(
    name: str, ratio: float, flags: int
) -> None:
    """With an app's traceparent, parent-based samplers follow its sampled flag (an unsampled
    parent is never sampled, a sampled one always), the others decide on its trace id."""
    sdk = make_sampler(name, ratio)
    head = head_sampler(sdk)
    for trace_id in trace_ids(head, 500):
        parent = remote(trace_id, flags)
        expected = sdk.should_sample(parent, trace_id, "GET up").decision.is_sampled()  # type: ignore[arg-type]
        assert head.continued(f"{trace_id:032x}", flags) is expected, (name, ratio, flags)
    if name.startswith("parentbased_"):
        assert head.continued(f"{LOW_64:032x}", 0x01)  # sampled parent: whatever the ratio
        assert not head.continued("0" * 31 + "1", 0x00)  # unsampled parent: never


def test_a_sampler_it_cannot_read_is_refused() -> None:
    """A sampler whose decision needs the SDK is refused at start-up, not guessed per call."""

    class Custom(Sampler):
        def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
            return SamplingResult(Decision.DROP)

        def get_description(self) -> str:
            return "Custom"

    with pytest.raises(ValueError, match="Custom"):
        head_sampler(Custom())


def test_ids_are_valid_and_a_decided_trace_id_goes_to_the_next_root_span_only() -> None:
    """Ids are never the invalid zero; the SDK's next new trace gets the id the decision was
    made on, and the one after it a fresh random id."""
    assert all(new_trace_id() for _ in range(1000)) and all(new_span_id() for _ in range(1000))
    ids = DecidedTraceIds()
    ids.use(0xABC)
    assert ids.generate_trace_id() == 0xABC
    assert ids.generate_trace_id() != 0xABC
    assert ids.is_trace_id_random()
