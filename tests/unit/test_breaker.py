"""The circuit breaker state machine, driven by a fake clock: every transition, the ratio window,
half-open trial limits, the growing open time and what operators see."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.config.policies import CircuitBreakerPolicy
from sidecar.errors import CircuitOpen
from sidecar.resilience.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def breaker(**policy: Any) -> tuple[CircuitBreaker, Clock, list[tuple[str, str, str]]]:
    clock = Clock()
    seen: list[tuple[str, str, str]] = []
    b = CircuitBreaker(
        "pay",
        CircuitBreakerPolicy(**policy),
        clock=clock,
        on_transition=lambda *t: seen.append(t),
    )
    return b, clock, seen


def fail(b: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        b.failure(b.admit() if b.state else b.generation, "503")


def succeed(b: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        b.success(b.admit() if b.state else b.generation)


def retry_after(b: CircuitBreaker) -> str | None:
    with pytest.raises(CircuitOpen) as info:
        b.admit()
    assert info.value.status == 503 and info.value.code == "circuit_open"
    return dict(info.value.headers).get("retry-after")


def test_opens_after_the_configured_consecutive_failures() -> None:
    """Five failures in a row (the default) stop the calls; four do not."""
    b, _, seen = breaker()
    fail(b, 4)
    assert b.state == CLOSED
    fail(b)
    assert b.state == OPEN
    assert seen == [("closed", "open", "5 consecutive failures (last: 503)")]


def test_a_success_resets_the_consecutive_count() -> None:
    """Failures must be in a row: an upstream that mostly answers is never cut off by streaks."""
    b, _, _ = breaker(consecutive_failures=3)
    for _ in range(10):
        fail(b, 2)
        succeed(b)
    assert b.state == CLOSED


def test_open_rejects_with_retry_after_until_the_open_time_passed() -> None:
    """Open, calls fail fast with Retry-After = whole seconds until trial calls, rounded up."""
    b, clock, _ = breaker(consecutive_failures=1, open_for="30s")
    fail(b)
    assert retry_after(b) == "30"
    clock.now += 12.2
    assert retry_after(b) == "18"
    clock.now += 17.5
    assert retry_after(b) == "1"  # 0.3 s left: never "0", which would invite a busy loop
    clock.now += 0.3
    gen = b.admit()  # the open time passed: this call is the trial
    assert b.state == HALF_OPEN and gen == b.generation


def test_half_open_lets_only_the_configured_trials_through() -> None:
    """While trials are out, other calls are refused (Retry-After 1); a finished trial frees
    its slot."""
    b, clock, seen = breaker(consecutive_failures=1, open_for="1s", half_open_requests=2)
    fail(b)
    clock.now += 1
    t1, t2 = b.admit(), b.admit()
    assert retry_after(b) == "1"
    b.success(t1)
    assert b.state == HALF_OPEN  # one success of two needed
    t3 = b.admit()
    assert retry_after(b) == "1"
    b.success(t2)
    b.success(t3)
    assert b.state == CLOSED
    assert [t[1] for t in seen] == ["open", "half-open", "closed"]
    assert seen[1][2] == "open time of 1s elapsed"
    assert seen[2][2] == "2 trial call(s) succeeded"


def test_a_failed_trial_reopens_with_the_open_time_doubled_up_to_the_cap() -> None:
    """A still-sick upstream is probed less and less often: 1s, 2s, 4s, then the 5s cap."""
    b, clock, seen = breaker(consecutive_failures=1, open_for="1s", max_open_for="5s")
    fail(b)
    waits = []
    for _ in range(4):
        waits.append(retry_after(b))
        clock.now += 100  # long past any open time
        fail(b)  # admitted as the trial, and it fails
        assert b.state == OPEN
    waits.append(retry_after(b))
    assert waits == ["1", "2", "4", "5", "5"]
    assert seen[-1] == ("half-open", "open", "trial call failed: 503")
    # recovery resets the open time: the next trip starts again at 1s
    clock.now += 100
    succeed(b)
    assert b.state == CLOSED
    fail(b)
    assert retry_after(b) == "1"


def test_outcomes_of_calls_from_an_earlier_state_are_ignored() -> None:
    """A slow call admitted before the trip cannot close or re-trip the breaker later."""
    b, clock, seen = breaker(consecutive_failures=2, open_for="1s")
    slow = b.generation  # admitted while closed, still running
    fail(b, 2)
    assert b.state == OPEN
    b.success(slow)
    assert b.state == OPEN
    clock.now += 1
    trial = b.admit()
    b.failure(slow, "reset")  # late failure of the old call: not the trial's verdict
    assert b.state == HALF_OPEN
    b.success(trial)
    assert b.state == CLOSED
    b.failure(trial, "reset")  # a verdict reported twice does not count again
    assert b.state == CLOSED and len(seen) == 3


def test_a_released_trial_frees_its_slot_without_a_verdict() -> None:
    """A trial the app cancelled (or the sidecar refused below) neither closes nor reopens."""
    b, clock, _ = breaker(consecutive_failures=1, open_for="1s")
    fail(b)
    clock.now += 1
    trial = b.admit()
    assert retry_after(b) == "1"
    b.release(trial)
    assert b.state == HALF_OPEN
    b.success(b.admit())
    assert b.state == CLOSED
    b.release(b.generation)  # closed: nothing to free, nothing counted
    assert b.state == CLOSED


def test_failure_ratio_trips_only_with_enough_calls_in_the_window() -> None:
    """Half the calls failing over the window opens it, but not before min_requests calls."""
    b, clock, seen = breaker(
        consecutive_failures=1000, failure_ratio=0.5, window="10s", min_requests=10
    )
    for _ in range(4):  # 8 calls, 4 failures: ratio met, too few calls
        succeed(b)
        fail(b)
        clock.now += 0.1
    assert b.state == CLOSED
    succeed(b)  # 9 calls
    assert b.state == CLOSED
    fail(b)  # 10 calls, 5 failures
    assert b.state == OPEN
    assert seen[0][2] == "5 of 10 calls failed within 10s (last: 503)"


def test_failure_ratio_forgets_calls_older_than_the_window() -> None:
    """Old failures slide out of the window: a past bad minute does not trip it today."""
    b, clock, _ = breaker(
        consecutive_failures=1000, failure_ratio=0.5, window="10s", min_requests=4
    )
    fail(b, 3)
    succeed(b, 3)  # 3 of 6 failed: exactly the ratio, but a success came last
    assert b.state == CLOSED
    clock.now += 11  # all of that is out of the window now
    succeed(b, 3)
    fail(b)  # 1 of 4: far under the ratio
    assert b.state == CLOSED
    assert b.describe()["window"]["calls"] == 4
    clock.now += 1000  # a long quiet spell empties every bucket
    succeed(b)
    assert b.describe()["window"] == {
        "seconds": 10.0,
        "calls": 1,
        "failures": 0,
        "trip_ratio": 0.5,
        "min_requests": 4,
    }


def test_failure_ratio_window_slides_bucket_by_bucket() -> None:
    """Within the window, failures still count; a tenth of it later the oldest bucket drops."""
    b, clock, _ = breaker(
        consecutive_failures=1000, failure_ratio=0.6, window="10s", min_requests=5
    )
    fail(b, 2)
    clock.now += 9.5
    succeed(b, 2)
    assert b.describe()["window"]["calls"] == 4  # both buckets are inside the window
    clock.now += 1.0
    fail(b)
    # the first two failures slid out: 1 failure of 3 calls
    assert b.describe()["window"]["failures"] == 1 and b.state == CLOSED


def test_closing_starts_a_fresh_window() -> None:
    """Failures from before the trip do not count again once the upstream recovered."""
    b, clock, _ = breaker(consecutive_failures=3, failure_ratio=0.5, min_requests=4, open_for="1s")
    succeed(b)
    fail(b, 3)
    assert b.state == OPEN
    clock.now += 1
    succeed(b)
    assert b.state == CLOSED
    fail(b)
    assert b.state == CLOSED and b.describe()["window"]["calls"] == 1


def test_describe_and_gauges_show_the_live_state() -> None:
    """/upstreams and sidecar_circuit_state tell an operator where the breaker is and why."""
    b, clock, _ = breaker(consecutive_failures=2, open_for="10s")
    fail(b)
    assert b.describe() == {
        "state": "closed",
        "consecutive_failures": 1,
        "trip_after": 2,
        "open_for_s": 10.0,
        "transitions": {"closed": 0, "open": 0, "half-open": 0},
    }
    assert b.gauges()[0][0] == "sidecar_circuit_state" and b.gauges()[0][2] == 0.0
    fail(b)
    clock.now += 2.5
    d = b.describe()
    assert d["state"] == "open" and d["half_open_in_s"] == 7.5
    assert d["transitions"] == {"closed": 0, "open": 1, "half-open": 0}
    assert b.gauges()[0][2] == 1.0
    clock.now += 7.5
    b.admit()
    d = b.describe()
    assert (d["state"], d["trials_in_flight"], d["trials_succeeded"]) == ("half-open", 1, 0)
    assert b.gauges()[0][2] == 2.0


def test_the_policy_refuses_a_cap_below_the_first_open_time() -> None:
    """max_open_for caps the growth of open_for, so it cannot be smaller."""
    with pytest.raises(ValueError, match="max_open_for must be at least open_for"):
        CircuitBreakerPolicy(open_for="1m", max_open_for="30s")
