"""The built-in filters: one internal plugin registering them through the public hook.

Chain order, outermost first, by phase (:mod:`sidecar.api.phases`), and why:

- ``rescue`` (rescue phase): turns every error into a response, so it must see everything below it.
- ``access_log`` (observe phase): one line per call including sidecar decisions, so it sits outside
  everything that decides, but inside rescue so a rescued error still gets its line from the error
  itself.
- ``tracing`` (observe phase, :mod:`.tracing`): the SERVER span. Inside the access log, so a call
  the tracing filter fails still gets its line (which carries the trace id the span stashed);
  outside ``metrics`` and every decision, so the span covers the whole call and records each
  decision (rate limit, breaker, overload...) on the way back.
- ``metrics`` (observe phase): counts what the app gets (retries inside it are one call).
- ``peer_allow`` (admit phase, :mod:`sidecar.tls.peer`, inbound listener only): a peer whose SPIFFE
  ID is not on the route's allow-list gets 403; right inside ``metrics`` so the refusal is counted
  and logged, before every other decision so such a peer takes no token and no slot.
- ``verify_hmac`` (admit phase, :mod:`sidecar.auth.verify`): inbound signature checks, right inside
  ``metrics`` so refusals are counted and logged, before the rate limits and the concurrency limit
  so an unsigned call takes no token and no slot from the signed ones.
- ``rate_limit`` (admit phase): the local bucket; inside ``metrics`` and the access log so a 429 is
  counted and logged, first among the decisions because it is the cheapest (no I/O).
- ``global_rate_limit`` (admit phase): right inside the local bucket, so a call it already refused
  costs no backend round trip; outside the concurrency limit, so a refused call never holds a slot.
- ``concurrency`` (admit phase): one slot per app call, whatever its retries; inside the rate limits
  so a call they refuse never holds a slot, outside the deadline so a queued wait is its own
  (``max_wait``).
- plugin filters (the extend phase by default).
- ``timeout`` (resilience phase): the overall deadline covers every attempt below it.
- ``fault`` (resilience phase, only where configured): injected delays and aborts. Inside the
  deadline, so an injected delay counts against it as a slow upstream's would; outside ``retry``
  and the breaker, so an injected abort consumes no retry and never trips the real breaker.
- ``retry`` (resilience phase): inside the deadline (which bounds its waits) and outside the
  breaker, so every attempt passes the breaker and an open breaker stops the retries; outside
  ``request_headers`` and the adapter, which run again for each attempt.
- ``circuit_breaker`` (resilience phase): inside ``retry``, so every attempt passes it and an open
  breaker ends the retries; right above the adapter, so it judges only what the upstream did.
- ``auth`` (attempt phase, :mod:`sidecar.auth.filter`): inside ``retry`` so every attempt gets a
  credential taken when it is sent (and a signer finds the body already replayable); inside the
  breaker so an open breaker refuses before a token is fetched; it replaces the app's credential.
- ``upstream_span`` (attempt phase, :mod:`.tracing`): a CLIENT span per attempt. Inside ``retry`` so
  each attempt is its own (sibling) span, inside the breaker so an open breaker makes none (the
  SERVER span records the decision), inside ``auth`` so the span times the request as sent; above
  ``request_headers``, so a ``traceparent`` set there by config would still win.
- ``identity_header`` (attempt phase, :mod:`sidecar.tls.identity`, inbound listener only): the
  verified peer identity for the app, set inside every other filter so none can replace or forge it
  (``request_headers`` comes after it, and inbound routes have none).
- ``request_headers`` (attempt phase): configured headers are set last so no filter above can undo
  them.
"""

from __future__ import annotations

from ..api import FilterRegistry, hookimpl
from ..api.phases import (
    ORDER_ACCESS_LOG,
    ORDER_AUTH,
    ORDER_CIRCUIT_BREAKER,
    ORDER_CONCURRENCY,
    ORDER_FAULT,
    ORDER_GLOBAL_RATE_LIMIT,
    ORDER_IDENTITY_HEADER,
    ORDER_METRICS,
    ORDER_PEER_ALLOW,
    ORDER_RATE_LIMIT,
    ORDER_REQUEST_HEADERS,
    ORDER_RESCUE,
    ORDER_RETRY,
    ORDER_TIMEOUT,
    ORDER_TRACING,
    ORDER_UPSTREAM_SPAN,
    ORDER_VERIFY_HMAC,
)
from ..auth import filter as auth_filter
from ..auth import verify as verify_hmac
from ..tls import identity as identity_header
from ..tls import peer as peer_allow
from . import (
    access_log,
    circuit_breaker,
    concurrency,
    fault,
    global_rate_limit,
    metrics,
    rate_limit,
    request_headers,
    rescue,
    retry,
    timeout,
    tracing,
)


@hookimpl(trylast=True)
def sidecar_register_filters(registry: FilterRegistry) -> None:
    registry.add("rescue", rescue.factory, order=ORDER_RESCUE)
    registry.add("access_log", access_log.factory, order=ORDER_ACCESS_LOG)
    registry.add("tracing", tracing.server_factory, order=ORDER_TRACING)
    registry.add("metrics", metrics.factory, order=ORDER_METRICS)
    registry.add("peer_allow", peer_allow.factory, order=ORDER_PEER_ALLOW)
    registry.add("verify_hmac", verify_hmac.factory, order=ORDER_VERIFY_HMAC)
    registry.add("rate_limit", rate_limit.factory, order=ORDER_RATE_LIMIT)
    registry.add("global_rate_limit", global_rate_limit.factory, order=ORDER_GLOBAL_RATE_LIMIT)
    registry.add("concurrency", concurrency.factory, order=ORDER_CONCURRENCY)
    registry.add("timeout", timeout.factory, order=ORDER_TIMEOUT)
    registry.add("fault", fault.factory, order=ORDER_FAULT)
    registry.add("retry", retry.factory, order=ORDER_RETRY)
    registry.add("circuit_breaker", circuit_breaker.factory, order=ORDER_CIRCUIT_BREAKER)
    registry.add("auth", auth_filter.factory, order=ORDER_AUTH)
    registry.add("upstream_span", tracing.upstream_factory, order=ORDER_UPSTREAM_SPAN)
    registry.add("request_headers", request_headers.factory, order=ORDER_REQUEST_HEADERS)
    registry.add("identity_header", identity_header.factory, order=ORDER_IDENTITY_HEADER)
