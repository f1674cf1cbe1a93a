"""How the app's answer to a delivery decides a message's fate, and how long retries wait
(no sockets)."""

from __future__ import annotations

import pytest
from sidecar_pubsub.config import RetryPolicy
from sidecar_pubsub.delivery import Verdict, verdict_of
from sidecar_pubsub.subscriber import retry_wait


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (200, b"", Verdict.ACK),
        (204, b"", Verdict.ACK),
        (200, b"not json", Verdict.ACK),
        (200, b'{"status": "SUCCESS"}', Verdict.ACK),
        (200, b'{"status": "RETRY"}', Verdict.RETRY),
        (200, b'{"status": "retry"}', Verdict.RETRY),
        (200, b'{"status": "DEADLETTER"}', Verdict.DEADLETTER),
        (200, b'{"status": "DROP"}', Verdict.DROP),
        (429, b"", Verdict.RETRY),
        (408, b"", Verdict.RETRY),
        (500, b"", Verdict.RETRY),
        (503, b'{"status": "DROP"}', Verdict.RETRY),
        (400, b"", Verdict.DEADLETTER),
        (404, b"", Verdict.DEADLETTER),
    ],
)
def test_the_apps_answer_decides(status: int, body: bytes, verdict: Verdict) -> None:
    """2xx acks unless its body says otherwise; 408/429/5xx retry; another 4xx is final."""
    assert verdict_of(status, body)[0] is verdict


def test_a_final_answer_names_its_status_as_the_reason() -> None:
    """The dead-letter reason of a 4xx says which status the app gave."""
    assert verdict_of(422, b"") == (Verdict.DEADLETTER, "the app answered 422")


def test_retry_waits_double_and_are_bounded() -> None:
    """Retries back off exponentially from `backoff` and never wait more than `max_backoff`."""
    policy = RetryPolicy(attempts=50, backoff=0.1, max_backoff=1.0)
    assert [retry_wait(policy, n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert retry_wait(policy, 49) == 1.0
