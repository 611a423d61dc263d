"""Deployment health for fallbacks: a circuit breaker per deployment (pure logic, injectable clock).

After ``failures`` consecutive failures a deployment is *cooling*: skipped for ``seconds``. Then it
is *half-open*: one request may probe it; success closes the breaker, failure cools it again.
Process-local state: with several gateway replicas each keeps its own (see docs/scale-out.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass
class _State:
    consecutive_failures: int = 0
    cooling_until: float = 0.0
    probing: bool = False
    total_failures: int = 0


class HealthTracker:
    def __init__(self, failures: int = 3, seconds: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.failures = failures
        self.seconds = seconds
        self.clock = clock
        self._states: dict[str, _State] = {}

    def _s(self, name: str) -> _State:
        return self._states.setdefault(name, _State())

    def available(self, name: str) -> bool:
        """May a request go to ``name`` now? Claims the single probe slot of a half-open breaker."""
        s = self._s(name)
        if s.consecutive_failures < self.failures:
            return True
        if self.clock() < s.cooling_until or s.probing:
            return False
        s.probing = True
        return True

    def state(self, name: str) -> str:
        s = self._s(name)
        if s.consecutive_failures < self.failures:
            return "ok"
        return "cooling" if self.clock() < s.cooling_until else "half-open"

    def success(self, name: str) -> None:
        s = self._s(name)
        s.consecutive_failures = 0
        s.probing = False

    def failure(self, name: str) -> None:
        s = self._s(name)
        s.consecutive_failures += 1
        s.total_failures += 1
        s.probing = False
        if s.consecutive_failures >= self.failures:
            s.cooling_until = self.clock() + self.seconds

    def order(self, ranked: Iterable[str]) -> list[str]:
        """``ranked`` without cooling deployments; if all are cooling, the ranked list unchanged."""
        ranked = list(ranked)
        ok = [n for n in ranked if self.state(n) != "cooling"]
        return ok or ranked
