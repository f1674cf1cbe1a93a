"""Open-file limits: connection caps sized from the limit, exhaustion logged once per episode."""

from __future__ import annotations

import errno
import logging
import resource

import pytest

from sidecar.fdlimit import Exhaustion, connection_cap, raise_soft_limit, reserve


def test_each_listener_gets_half_of_what_the_reserve_leaves_shared_evenly() -> None:
    """App connections plus the upstream connections their calls hold stay under the limit."""
    assert reserve(20_000) == 256 and reserve(256) == 64
    assert connection_cap(20_000, 2) == (20_000 - 256) // 2 // 2
    assert connection_cap(1024, 3) == (1024 - 256) // 2 // 3
    for limit in (256, 1024, 20_000, 1_048_576):
        for listeners in (1, 2, 3):
            total = connection_cap(limit, listeners) * listeners
            assert 2 * total + reserve(limit) <= limit


def test_a_tiny_limit_still_leaves_each_listener_a_few_connections() -> None:
    """A misconfigured 64-handle limit degrades, it does not refuse every app connection."""
    assert connection_cap(64, 3) == 16


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    """1024 is a shell default, not a budget: the sidecar takes what the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 512:
        pytest.fail(f"this test needs a finite hard limit above 512, got {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
    try:
        assert raise_soft_limit() == (512, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
        assert raise_soft_limit() == (hard, hard)  # nothing left to raise
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_exhaustion_is_counted_every_time_and_logged_once_per_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A flood of EMFILE is one log line per episode, not one per failed accept."""
    now = [100.0]
    counted: list[str] = []
    exhaustion = Exhaustion(counted.append, clock=lambda: now[0])
    emfile = OSError(errno.EMFILE, "Too many open files")
    with caplog.at_level(logging.ERROR, logger="sidecar"):
        for _ in range(50):
            exhaustion.seen("accept", emfile)
            now[0] += 0.1  # a steady stream: one episode
        now[0] += 30  # quiet for longer than an episode's gap
        exhaustion.seen("accept", emfile)
    assert counted == ["accept"] * 51
    assert [r.getMessage() for r in caplog.records] == ["accept failed: Too many open files"] * 2
    assert caplog.records[0].fields["errno"] == "EMFILE"  # type: ignore[attr-defined]


def test_only_running_out_of_handles_counts_as_exhaustion() -> None:
    """A refused or reset connection is not an exhaustion."""
    assert Exhaustion.is_exhaustion(OSError(errno.EMFILE, "x"))
    assert Exhaustion.is_exhaustion(OSError(errno.ENFILE, "x"))
    assert not Exhaustion.is_exhaustion(OSError(errno.ECONNREFUSED, "x"))
    assert not Exhaustion.is_exhaustion(ValueError("x"))
