"""Review of today's hot-path rewrites against the formulas they replaced: a histogram's
buckets (le inclusive, +Inf, negative and non-finite values), the access log's milliseconds
and timestamps, and the upstream request head. What a user relies on: the same metrics, log
lines and bytes on the wire as before the rewrite."""

from __future__ import annotations

import math
import random
from bisect import bisect_left

import pytest

from sidecar.adapters.http_adapter import _head_writer
from sidecar.exchange import Exchange, Headers
from sidecar.filters.access_log import _millis, _Timestamps
from sidecar.telemetry.families import HistogramChild
from sidecar.telemetry.logs import timestamp

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@pytest.mark.parametrize(
    "value",
    [-1.0, 0.0, 0.005, 0.0050001, 0.01, 0.3, 1.0, 10.0, 10.0000001, 1e300, math.inf, -math.inf],
)
def test_a_histogram_bucket_is_the_first_bound_at_or_above_the_value(value: float) -> None:
    """Every value lands in the bucket it landed in with bisect (le inclusive; past the last
    bound, +Inf), and adds to the sum."""
    child = HistogramChild(BOUNDS)
    child.observe(value)
    expected = [0] * (len(BOUNDS) + 1)
    expected[bisect_left(BOUNDS, value)] += 1
    assert child.counts == expected
    assert child.sum == value


def test_a_nan_observation_is_counted_in_the_inf_bucket_only() -> None:
    """A NaN (no duration is, but a plugin's observation may be) lands in +Inf, not in the
    lowest bucket as bisect put it: no bucket claims a NaN was at most 5 ms."""
    child = HistogramChild(BOUNDS)
    child.observe(math.nan)
    assert child.counts == [0] * len(BOUNDS) + [1]


def _old_millis(seconds: float) -> str:
    micros = int(seconds * 1_000_000 + 0.5)
    whole = str(micros // 1000)
    fraction = micros % 1000
    if fraction == 0:
        return f"{whole}.0"
    return f"{whole}.{str(fraction + 1000)[1:].rstrip('0')}"


def test_every_millisecond_fraction_is_written_as_before() -> None:
    """Each of the 1000 microsecond fractions of a millisecond, and random durations up to an
    hour, read from the table exactly as the old formula wrote them, and as
    ``repr(round(ms, 3))`` but for a rounding of a halfway microsecond."""
    rng = random.Random(7)
    samples = [n / 1_000_000 for n in range(0, 3_000)]
    samples += [rng.uniform(0, 3600) for _ in range(20_000)]
    samples += [rng.uniform(0, 0.01) for _ in range(20_000)]
    for seconds in samples:
        assert _millis(seconds) == _old_millis(seconds), seconds
        exact = repr(round(seconds * 1000, 3))
        if _millis(seconds) != exact:  # only on a halfway microsecond
            micros = seconds * 1_000_000
            assert abs(micros - math.floor(micros) - 0.5) < 1e-3, (seconds, exact)


def test_a_timestamps_milliseconds_are_loggings() -> None:
    """A line's timestamp ends with the milliseconds ``logging`` computes for its record
    (``LogRecord.msecs``), zero-padded, for every millisecond and near each second's end."""
    stamps = _Timestamps()
    rng = random.Random(3)
    base = 1_790_000_000
    created = [base + n / 1000 + rng.uniform(0, 0.000999) for n in range(3000)]
    created += [base + 5 + 1 - 2**-20, base + 7 + 0.9999999, float(base)]
    for value in created:
        msecs = int((value - int(value)) * 1000)
        assert stamps.of(value) == timestamp(float(int(value)))[:-5] + f".{msecs:03d}Z"
        assert 0 <= msecs <= 999


def _old_head(base: str, authority: str, ex: Exchange, length: int | None) -> bytes:
    query = ex.query
    target = f"{ex.path}?{query}" if query else ex.path
    out = [f"{ex.method} {base}{target} HTTP/1.1\r\n", f"host: {authority}\r\n"]
    xff = None
    for k, v in ex.headers.items():
        if k == "host":
            continue
        if k == "x-forwarded-for":
            xff = v if xff is None else f"{xff}, {v}"
            continue
        out.append(f"{k}: {v}\r\n")
    ip = ex.client.rpartition(":")[0] if ex.client else ""
    if not xff:
        out.append(f"x-forwarded-for: {ip}\r\n" if ip else "")
    else:
        out.append(f"x-forwarded-for: {xff}, {ip}\r\n" if ip else f"x-forwarded-for: {xff}\r\n")
    if length is None:
        out.append("transfer-encoding: chunked\r\n\r\n")
    elif length or ex.method in ("POST", "PUT", "PATCH"):
        out.append(f"content-length: {length}\r\n\r\n")
    else:
        out.append("\r\n")
    return "".join(out).encode("latin-1")


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE"])
@pytest.mark.parametrize("query", ["", "a=1&b=%20"])
@pytest.mark.parametrize("length", [None, 0, 12])
@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("host", "app"), ("accept", "*/*")],
        [("x-forwarded-for", "10.0.0.1"), ("a", "b"), ("x-forwarded-for", "10.0.0.2")],
        [("x-forwarded-for", "")],
    ],
)
def test_the_request_head_is_the_bytes_it_was(
    method: str, query: str, length: int | None, headers: list[tuple[str, str]]
) -> None:
    """The head an upstream gets (request line with base path and query, Host rewritten,
    X-Forwarded-For lines merged with the app's address, framing) is byte for byte the old
    writer's."""
    ex = Exchange(method, "/p/q", Headers(headers), query=query, client="127.0.0.1:4000")
    assert _head_writer("/base", "up:8080").write(ex, length) == _old_head(
        "/base", "up:8080", ex, length
    )
