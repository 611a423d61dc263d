"""API keys and per-key rate limits (pure logic, injectable clock).

Keys are kept only as SHA-256 digests and compared with ``hmac.compare_digest`` against every
stored digest, so neither a match nor its position leaks through timing. Limits are token
buckets: requests per minute are taken up front; tokens per minute are charged after the answer
(the count is only known then) and a key whose bucket is empty is refused until it refills.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: buckets kept per limiter map; the least recently used goes first (its client starts afresh, full)
MAX_BUCKETS = 65_536


@dataclass
class KeyInfo:
    name: str
    digest: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


class KeyStore:
    def __init__(self, keys: list[KeyInfo]):
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def lookup(self, presented: str | None) -> KeyInfo | None:
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode()).hexdigest()
        found = None
        for info in self.keys:  # no early exit: the time does not depend on which key matched
            if hmac.compare_digest(digest, info.digest):
                found = info
        return found


class Bucket:
    """A token bucket of ``capacity`` refilled at ``capacity`` per minute."""

    def __init__(self, capacity: int, clock: Callable[[], float]):
        self.capacity = float(capacity)
        self.rate = capacity / 60.0
        self.level = float(capacity)
        self.clock = clock
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def retry_after(self, need: float = 1.0) -> float:
        """0 if ``need`` is available now, else seconds until it will be."""
        self._refill()
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount


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
        return math.ceil(wait) if wait > 0 else 0

    def charge_tokens(self, who: str, tpm: int | None, tokens: int) -> None:
        if tpm and tokens > 0:
            self._tok.get_or_make(who, tpm).take(tokens)
