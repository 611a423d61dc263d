"""Token buckets (pure logic, injectable clock): the arithmetic every rate-limit store implements.

A bucket of ``capacity`` holds at most one minute's allowance and refills at ``capacity`` per
minute; a client never seen starts full. Requests are taken up front; tokens are charged after the
answer (the count is only known then), so a token bucket may go negative and refuses until it has
refilled to one. The Redis store runs the same arithmetic in a server-side script
(:data:`junto.stores.redis_store.CHECK_LUA`), and both pass the same contract tests.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

#: buckets kept per limiter map; the least recently used goes first (its client starts afresh, full)
MAX_BUCKETS = 65_536


class Bucket:
    """A token bucket of ``capacity`` refilled at ``capacity`` per minute."""

    def __init__(self, capacity: int, clock: Callable[[], float]):
        self.capacity = float(capacity)
        self.rate = capacity / 60.0
        self.level = float(capacity)
        self.clock = clock
        self.stamp = clock()

    def _level(self, now: float) -> float:
        return min(self.capacity, self.level + max(0.0, now - self.stamp) * self.rate)

    def retry_after(self, need: float = 1.0) -> float:
        """0 if ``need`` is available now, else seconds until it will be. Only looks (as the Redis script does:
        the same arithmetic, so both stores agree to the last bit)."""
        level = self._level(self.clock())
        return 0.0 if level >= need else (need - level) / self.rate

    def take(self, amount: float) -> None:
        now = self.clock()
        self.level = self._level(now) - amount
        self.stamp = now


class _Buckets(OrderedDict):
    """Buckets by client, bounded: anonymous clients are keyed by IP address, so the map must not grow forever."""

    def __init__(self, clock: Callable[[], float], limit: int):
        super().__init__()
        self.clock, self.limit = clock, limit

    def get_or_make(self, who: str, capacity: int) -> Bucket:
        b = self.get(who)
        if b is None:
            b = self[who] = Bucket(capacity, self.clock)
            if len(self) > self.limit:
                self.popitem(last=False)
        else:
            self.move_to_end(who)
        return b


class RateLimiter:
    """Request and token buckets per client, in this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_clients: int = MAX_BUCKETS):
        self.clock = clock
        self._req = _Buckets(clock, max_clients)
        self._tok = _Buckets(clock, max_clients)

    def check(self, who: str, rpm: int | None, tpm: int | None) -> int:
        """Admit one request for ``who``: 0, or the whole seconds to wait (Retry-After)."""
        wait = 0.0
        if tpm:
            tb = self._tok.get_or_make(who, tpm)
            wait = max(wait, tb.retry_after(1.0))
        if rpm:
            rb = self._req.get_or_make(who, rpm)
            w = rb.retry_after(1.0)
            if w == 0.0 and wait == 0.0:
                rb.take(1.0)
            wait = max(wait, w)
        return retry_seconds(wait)

    def charge_tokens(self, who: str, tpm: int | None, tokens: int) -> None:
        if tpm and tokens > 0:
            self._tok.get_or_make(who, tpm).take(tokens)


def retry_seconds(wait: float) -> int:
    """A wait in seconds as a Retry-After value: whole seconds, rounded up; 0 means admitted."""
    return math.ceil(wait) if wait > 0 else 0
