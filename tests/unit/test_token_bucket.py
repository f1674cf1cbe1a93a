"""Token buckets under a controlled clock: exact admitted counts, booking, LRU bound."""

from __future__ import annotations

import pytest

from sidecar.ratelimit import TokenBucket, TokenBuckets


def admitted(bucket: TokenBucket, now: float, calls: int) -> int:
    return sum(1 for _ in range(calls) if bucket.take(now) == 0.0)


def test_a_full_bucket_admits_exactly_burst_at_once() -> None:
    """After a quiet spell, `burst` calls go at once and the next one is refused."""
    bucket = TokenBucket(rate=10, burst=5)
    assert admitted(bucket, 0.0, 20) == 5


def test_refill_admits_exactly_rate_times_elapsed() -> None:
    """Tokens come back at `rate` per second, whole tokens only, never past `burst`."""
    bucket = TokenBucket(rate=10, burst=5)
    assert admitted(bucket, 0.0, 20) == 5
    assert admitted(bucket, 0.25, 20) == 2  # 2.5 tokens refilled: 2 whole ones
    assert admitted(bucket, 0.30, 20) == 1  # the half token became whole
    assert admitted(bucket, 100.0, 20) == 5  # a long quiet spell refills to burst, no more


def test_a_long_run_admits_burst_plus_rate_times_duration() -> None:
    """Flooded every 10 ms for 10 s, a 10/s bucket of 5 admits 5 + 100 calls, not one more."""
    bucket = TokenBucket(rate=10, burst=5)
    total = sum(admitted(bucket, step / 100, 50) for step in range(1001))
    assert total == 5 + 100


def test_a_refused_call_learns_when_the_next_token_comes() -> None:
    """The wait returned to a refused call is the time until one token is back."""
    bucket = TokenBucket(rate=4, burst=1)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.25)
    assert bucket.take(0.1) == pytest.approx(0.15)
    assert bucket.take(0.25) == 0.0


def test_reserve_books_future_tokens_in_order_up_to_max_wait() -> None:
    """wait mode: each booking waits one interval more; past max_wait nothing is booked."""
    bucket = TokenBucket(rate=10, burst=1)
    assert bucket.reserve(0.0, max_wait=0.25) == 0.0
    assert bucket.reserve(0.0, max_wait=0.25) == pytest.approx(0.1)
    assert bucket.reserve(0.0, max_wait=0.25) == pytest.approx(0.2)
    refused = bucket.reserve(0.0, max_wait=0.25)
    assert refused == pytest.approx(-0.3)  # negative: refused, and nothing booked
    assert bucket.reserve(0.0, max_wait=0.3) == pytest.approx(0.3)


def test_refund_returns_a_booked_token() -> None:
    """A waiting call that gives up hands its token to the next caller."""
    bucket = TokenBucket(rate=10, burst=1)
    bucket.reserve(0.0, max_wait=1.0)
    assert bucket.reserve(0.0, max_wait=1.0) == pytest.approx(0.1)
    bucket.refund()
    assert bucket.reserve(0.0, max_wait=1.0) == pytest.approx(0.1)


def test_remaining_counts_whole_tokens() -> None:
    """`remaining` is what the bucket could admit right now."""
    bucket = TokenBucket(rate=10, burst=5)
    assert bucket.remaining(0.0) == 5
    admitted(bucket, 0.0, 3)
    assert bucket.remaining(0.0) == 2
    assert bucket.remaining(0.15) == 3


def test_keys_have_their_own_buckets() -> None:
    """One tenant's flood does not spend another tenant's tokens."""
    buckets = TokenBuckets(rate=1, burst=2)
    assert [buckets.take("a", 0.0) == 0.0 for _ in range(3)] == [True, True, False]
    assert [buckets.take("b", 0.0) == 0.0 for _ in range(3)] == [True, True, False]


def test_the_number_of_keys_is_bounded_least_recently_used_first() -> None:
    """An endless stream of new keys keeps at most max_keys buckets; a busy key is kept."""
    buckets = TokenBuckets(rate=1, burst=1, max_keys=3)
    buckets.take("busy", 0.0)
    for i in range(1000):
        buckets.take(f"k{i}", 0.0)
        buckets.take("busy", 0.0)  # refused (empty) but recently used, so never evicted
        assert len(buckets) <= 3
    assert buckets.take("busy", 0.0) > 0  # still empty: its state survived the churn
    assert buckets.take("k0", 0.0) == 0.0  # evicted long ago: a full bucket again


@pytest.mark.parametrize(("rate", "burst", "max_keys"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_nonsense_shapes_are_refused(rate: float, burst: int, max_keys: int) -> None:
    """A bucket that could never admit anything is a programming error, said at once."""
    with pytest.raises(ValueError):
        TokenBuckets(rate, burst, max_keys)
