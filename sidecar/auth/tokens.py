"""A cached token that is fetched once, renewed early in the background, and never used stale.

:class:`TokenSource` holds one token (one provider, one set of scopes) and these rules:

- **cached**: calls take the cached token while it is valid; N calls cost one fetch.
- **early refresh**: a background task renews it at a random point between ``refresh_at``
  fractions of its lifetime (50–80 % by default), so replicas started together do not all ask
  the identity provider (IdP) at once and no call waits for a renewal.
- **single-flight**: one fetch at a time, however many calls wait; they all get its result.
- **never stale**: a token counts as expired a little before the IdP said (10 % of its lifetime,
  at most 30 s, measured from when it was *asked for*), and an expired token is never returned.
- **IdP failures** are retried in the background with exponential backoff (jittered) while
  calls still use the valid token; once it has expired, a call that finds the IdP still failing
  (or inside the backoff) gets :class:`~sidecar.errors.CredentialsUnavailable` (503) at once
  rather than waiting for the next attempt, and never the old token. The background retries go
  on (also after a first fetch that failed), so the token is back as soon as the IdP is.
- **idle**: a source nobody used for a whole token lifetime stops renewing (the next call fetches
  again), so an upstream that a reload removed stops costing IdP calls.

The fetch itself is a callable (:mod:`.oauth2` posts to a token endpoint); clock, sleep and
randomness are injectable, so every rule here is tested under a controlled clock.
"""

from __future__ import annotations

__all__ = ["FORCED_REFRESH_INTERVAL", "Token", "TokenFetchError", "TokenSource"]

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..errors import CredentialsUnavailable

log = logging.getLogger("sidecar.auth")

#: A token an upstream refused (401) is renewed at once, but at most this often: an upstream
#: that refuses every token must not turn each call into an IdP call.
FORCED_REFRESH_INTERVAL = 1.0
#: The background task never fetches twice within this many seconds, whatever lifetime the IdP
#: gives (an ``expires_in`` of 0.01 s must not become 100 fetches a second).
MIN_REFRESH_GAP = 0.25

Fetch = Callable[[], Awaitable[tuple[str, "float | None"]]]
Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


@dataclass(frozen=True, slots=True)
class Token:
    """One token and its timeline (clock seconds)."""

    value: str
    #: when it was asked for (its lifetime counts from here, not from the answer).
    obtained: float
    #: seconds it is valid, as the IdP said (or the default).
    lifetime: float
    #: when the background task renews it.
    refresh_at: float
    #: after this it is never used.
    expires_at: float


class TokenFetchError(Exception):
    """A fetch failed. ``result`` labels ``sidecar_tokens_refreshed_total`` (``rejected``,
    ``unreachable``, ``invalid``); ``reason`` is said to operators and apps: it must never
    contain a secret (a status code and the OAuth ``error`` code, not the IdP's body)."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


class TokenSource:
    """The token of one provider and set of scopes (see the module docstring)."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        name: str,
        spawn: Spawn,
        clock: Callable[[], float],
        refresh_at: tuple[float, float] = (0.5, 0.8),
        backoff: tuple[float, float] = (0.5, 30.0),
        default_lifetime: float = 300.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        on_result: Callable[[str], None] = lambda result: None,
    ) -> None:
        self._fetch = fetch
        self.name = name
        self._spawn = spawn
        self._clock = clock
        self._refresh_lo, self._refresh_hi = refresh_at
        self._backoff_base, self._backoff_max = backoff
        self._default_lifetime = default_lifetime
        self._sleep = sleep
        self._rand = rand
        self._on_result = on_result
        #: the current token (possibly expired; :meth:`get` checks).
        self.token: Token | None = None
        self._pending: asyncio.Task[Token] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_used = clock()
        self._last_forced = float("-inf")
        #: fetches that succeeded / failed, and the last failure's reason (for /upstreams).
        self.fetched = 0
        self.failed = 0
        self.last_error: str | None = None

    # --- what calls use ----------------------------------------------------------------------

    async def get(self) -> Token:
        """A valid token: the cached one, or the result of the fetch in flight (one for all).

        Raises :class:`CredentialsUnavailable` when none can be had now."""
        now = self._clock()
        self._last_used = now
        token = self.token
        if token is not None and now < token.expires_at:
            if self._refresher is None:
                self._start_refresher()
            return token
        if self._pending is None and self._failures and now < self._retry_at:
            # the IdP failed moments ago: answer now instead of asking it again per call
            raise self._unavailable(now)
        return await self._join()

    async def renew(self, rejected: Token) -> Token | None:
        """An upstream refused ``rejected`` (401): a different valid token, or ``None``.

        The first call to see the refusal fetches a new token (at most once per
        :data:`FORCED_REFRESH_INTERVAL`); calls that were refused with the same token meanwhile
        join that fetch. The old token stays in use for others until the new one arrives."""
        now = self._clock()
        current = self.token
        if current is rejected:
            if self._pending is None:
                if now - self._last_forced < FORCED_REFRESH_INTERVAL:
                    return None
                if self._failures and now < self._retry_at:
                    return None
                self._last_forced = now
            try:
                current = await self._join()
            except CredentialsUnavailable:
                return None
        elif self._pending is not None:  # a renewal is already on its way
            try:
                current = await self._join()
            except CredentialsUnavailable:
                return None
        if current is None or current is rejected or self._clock() >= current.expires_at:
            return None
        return current

    def seconds_left(self) -> float:
        """Seconds the cached token stays usable (0 when there is none, or it has expired)."""
        token = self.token
        return max(0.0, token.expires_at - self._clock()) if token is not None else 0.0

    # --- fetching ----------------------------------------------------------------------------

    async def _join(self) -> Token:
        pending = self._pending
        if pending is None:
            pending = self._pending = self._spawn(self._attempt(), f"token fetch: {self.name}")
        try:
            # shielded: a call that goes away (deadline, app gone) does not cancel the fetch
            # the other calls wait for
            return await asyncio.shield(pending)
        except TokenFetchError:
            raise self._unavailable(self._clock()) from None

    async def _attempt(self) -> Token:
        asked = self._clock()
        try:
            try:
                value, expires_in = await self._fetch()
            except TokenFetchError as e:
                self._failed(e)
                raise
            except Exception as e:  # a library error the fetch did not translate: still a failure
                err = TokenFetchError("invalid", f"unexpected error: {type(e).__name__}")
                self._failed(err)
                raise err from None
            token = self._token(value, expires_in, asked)
            recovered = self._failures > 0
            self.token, self._failures = token, 0
            self.fetched += 1
            self._on_result("ok")
            if recovered:
                log.info(
                    "token fetch recovered",
                    extra={"fields": {"upstream": self.name, "valid_for_s": token.lifetime}},
                )
            if self._refresher is None:
                self._start_refresher()
            return token
        finally:
            self._pending = None

    def _token(self, value: str, expires_in: float | None, asked: float) -> Token:
        lifetime = expires_in if expires_in is not None and expires_in > 0 else None
        lifetime = lifetime or self._default_lifetime
        fraction = self._refresh_lo + (self._refresh_hi - self._refresh_lo) * self._rand()
        # the margin covers the time a call takes to reach the upstream with the token
        margin = min(lifetime * 0.1, 30.0)
        return Token(
            value=value,
            obtained=asked,
            lifetime=lifetime,
            refresh_at=asked + lifetime * fraction,
            expires_at=asked + lifetime - margin,
        )

    def _failed(self, error: TokenFetchError) -> None:
        if self._refresher is None:  # keep trying in the background, so calls find a token
            self._start_refresher()
        self._failures += 1
        self.failed += 1
        self.last_error = error.reason
        now = self._clock()
        delay = self._backoff(self._failures)
        self._retry_at = now + delay
        self._on_result(error.result)
        n = self._failures
        if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th... failure in a row: not one line a call
            log.warning(
                "token fetch failed",
                extra={
                    "fields": {
                        "upstream": self.name,
                        "reason": error.reason,
                        "failures": n,
                        "retry_in_s": round(delay, 3),
                        "token_valid_for_s": round(self.seconds_left(), 3),
                    }
                },
            )

    def _backoff(self, failures: int) -> float:
        ceiling: float = min(self._backoff_max, self._backoff_base * 2.0 ** min(failures - 1, 30))
        return ceiling * (0.5 + 0.5 * self._rand())  # jittered, never below half the ceiling

    def _unavailable(self, now: float) -> CredentialsUnavailable:
        wait = max(0.0, self._retry_at - now)
        return CredentialsUnavailable(
            f"no valid token for upstream {self.name!r}: the identity provider failed "
            f"({self.last_error}); next attempt in {wait:.1f}s"
        )

    # --- the background refresher ------------------------------------------------------------

    def _start_refresher(self) -> None:
        self._refresher = self._spawn(self._refresh_loop(), f"token refresh: {self.name}")

    async def _refresh_loop(self) -> None:
        try:
            while True:
                now = self._clock()
                token = self.token
                if self._failures:
                    wake = self._retry_at
                elif token is not None:
                    wake = max(token.refresh_at, token.obtained + MIN_REFRESH_GAP)
                else:
                    wake = now
                if wake > now:
                    await self._sleep(wake - now)
                lifetime = token.lifetime if token is not None else self._default_lifetime
                if self._clock() - self._last_used > lifetime:
                    return  # idle: the next call fetches again (and restarts this task)
                try:
                    await self._join()
                except CredentialsUnavailable:
                    pass  # counted and logged; the loop waits out the backoff
        finally:
            self._refresher = None
