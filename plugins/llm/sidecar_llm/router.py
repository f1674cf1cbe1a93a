"""Which deployment a call tries, in which order, and which deployments are cooling down.

A call for group ``g`` tries ``g``'s deployments in a weighted random order (each next one drawn
by weight among those left), then each fallback group's the same way (``fallbacks``, depth first,
each group once). Deployments cooling down are left out. A deployment that fails ``failures``
times within ``window`` cools down for ``duration``, or for the provider's ``Retry-After`` when
that is longer (capped by ``max_retry_after``); a success clears its failures. When every
deployment of every group is cooling down, the plan is empty and the call is answered at once
with the shortest wait left (no call is sent to a provider that asked us to wait).

Cooldown state is per adapter instance (one sidecar), keyed by (provider, model), so one model
served for two groups cools down once. Not here: sending (:mod:`.providers`), what counts as a
failure (:class:`~.providers.ProviderFailure`).
"""

from __future__ import annotations

__all__ = ["Router", "Target"]

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .config import Cooldown, Deployment, LLMOptions


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment as tried for a call: its group, provider and provider model name."""

    group: str
    provider: str
    model: str
    weight: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.model)


class _Health:
    """One deployment's recent failures and the end of its cooldown."""

    __slots__ = ("cool_until", "failures")

    def __init__(self) -> None:
        self.failures: deque[float] = deque()
        self.cool_until = 0.0


class Router:
    """Plans the attempts of calls for one upstream and keeps its deployments' cooldowns."""

    def __init__(
        self,
        options: LLMOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._options = options
        self._cooldown: Cooldown = options.cooldown
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - load spreading, not security
        self._health: dict[tuple[str, str], _Health] = {}
        self._groups: dict[str, list[Target]] = {
            name: [self._target(name, d) for d in group.deployments]
            for name, group in options.groups.items()
        }
        self._orders = {name: options.fallback_order(name) for name in options.groups}

    @staticmethod
    def _target(group: str, d: Deployment) -> Target:
        return Target(group, d.provider, d.model, d.weight)

    def groups(self) -> list[str]:
        return list(self._groups)

    def depth(self, group: str, tried: str) -> int:
        """How far down ``group``'s fallback chain ``tried`` is (0: ``group`` itself)."""
        return self._orders[group].index(tried)

    def plan(self, group: str) -> tuple[list[Target], float]:
        """The targets to try for a call to ``group``, in order, and, when that list is empty
        because everything is cooling down, the seconds until the first one is back."""
        now = self._clock()
        plan: list[Target] = []
        soonest = float("inf")
        for name in self._orders[group]:
            ready: list[Target] = []
            for t in self._groups[name]:
                health = self._health.get(t.key)
                if health is not None and health.cool_until > now:
                    soonest = min(soonest, health.cool_until - now)
                else:
                    ready.append(t)
            plan.extend(self._weighted_order(ready))
        return plan, (0.0 if plan else soonest)

    def _weighted_order(self, targets: list[Target]) -> list[Target]:
        left = list(targets)
        order: list[Target] = []
        while left:
            if len(left) == 1:
                order.append(left.pop())
                break
            pick = self._rng.uniform(0, sum(t.weight for t in left))
            for i, t in enumerate(left):
                pick -= t.weight
                if pick <= 0 or i == len(left) - 1:
                    order.append(left.pop(i))
                    break
        return order

    def failed(self, target: Target, retry_after: float | None = None) -> bool:
        """Count a failure of ``target``; returns whether it now cools down."""
        now = self._clock()
        c = self._cooldown
        health = self._health.setdefault(target.key, _Health())
        failures = health.failures
        failures.append(now)
        while failures and failures[0] <= now - c.window:
            failures.popleft()
        if retry_after is not None and retry_after > 0:
            # the provider said when to come back: believe it at once (bounded)
            health.cool_until = max(health.cool_until, now + min(retry_after, c.max_retry_after))
            failures.clear()
            return True
        if len(failures) >= c.failures:
            health.cool_until = max(health.cool_until, now + c.duration)
            failures.clear()
            return True
        return False

    def succeeded(self, target: Target) -> None:
        health = self._health.get(target.key)
        if health is not None:
            health.failures.clear()

    def cooling(self) -> list[dict[str, object]]:
        """The deployments cooling down now, for ``/upstreams``."""
        now = self._clock()
        return [
            {"provider": p, "model": m, "seconds_left": round(h.cool_until - now, 3)}
            for (p, m), h in self._health.items()
            if h.cool_until > now
        ]
