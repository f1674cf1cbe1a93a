"""One message to the app: POST it as a CloudEvent and read what the app decided.

The app is sent the event in HTTP binary mode (``ce-*`` headers, the data as the body, plus the
``traceparent`` of the delivery's span, or the event's own, so its trace goes on) at
``plugins.pubsub.app`` + the subscription's
``path``. Its answer is a :class:`Verdict`:

- 2xx acknowledges, unless its JSON body says ``{"status": "RETRY" | "DEADLETTER" | "DROP"}``;
- 408, 429, 5xx, a timeout or a refused connection retry;
- any other status (400, 404...) is final: the message goes to the dead-letter topic, since
  sending it again would get the same answer.

Not here: retry timing, acknowledgement, dead letters (:mod:`.subscriber`).
"""

from __future__ import annotations

__all__ = ["Verdict", "deliver", "verdict_of"]

import enum
import json
from typing import TYPE_CHECKING

from sidecar import deferred

from .envelope import CloudEvent, to_binary

if TYPE_CHECKING:
    import aiohttp
else:  # imported when first used: not by a sidecar that has no such upstream
    aiohttp = deferred("aiohttp")

#: the most of the app's answer read to find its status
ANSWER_LIMIT = 64 << 10
RETRYABLE = frozenset({408, 429})


class Verdict(enum.Enum):
    ACK = "ack"
    RETRY = "retry"
    DEADLETTER = "deadletter"
    DROP = "drop"


async def deliver(
    session: aiohttp.ClientSession,
    url: str,
    event: CloudEvent,
    attempt: int,
    limit_s: float,
    traceparent: object = None,
) -> tuple[Verdict, str]:
    """POST ``event`` to ``url``: the app's verdict and, when it is not an ack, why. The call
    carries ``traceparent`` (the delivery's span) or else the one the event carries."""
    headers, body = to_binary(event)
    if traceparent is None:
        traceparent = event.attributes.get("traceparent")
    if traceparent is not None:
        headers.append(("traceparent", str(traceparent)))
    headers.append(("x-sidecar-delivery-attempt", str(attempt)))
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=limit_s),
            allow_redirects=False,
        ) as answer:
            status = answer.status
            text = await answer.content.read(ANSWER_LIMIT)
    except TimeoutError:
        return Verdict.RETRY, f"the app did not answer within {limit_s:.3g}s"
    except aiohttp.ClientError as e:
        return Verdict.RETRY, f"the app could not be reached ({type(e).__name__})"
    return verdict_of(status, text)


def verdict_of(status: int, text: bytes) -> tuple[Verdict, str]:
    """What the app's answer (its status and the start of its body) decides."""
    if 200 <= status < 300:
        return _status_of(text)
    if status in RETRYABLE or status >= 500:
        return Verdict.RETRY, f"the app answered {status}"
    return Verdict.DEADLETTER, f"the app answered {status}"


def _status_of(text: bytes) -> tuple[Verdict, str]:
    try:
        doc = json.loads(text) if text.strip() else None
    except (ValueError, UnicodeDecodeError):
        return Verdict.ACK, ""
    status = doc.get("status") if isinstance(doc, dict) else None
    match str(status).upper() if status is not None else "SUCCESS":
        case "RETRY":
            return Verdict.RETRY, "the app answered RETRY"
        case "DEADLETTER":
            return Verdict.DEADLETTER, "the app answered DEADLETTER"
        case "DROP":
            return Verdict.DROP, "the app answered DROP"
        case _:
            return Verdict.ACK, ""
