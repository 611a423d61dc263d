"""API keys (pure logic) and the per-key rate limits' arithmetic.

Keys are kept only as SHA-256 digests and compared with ``hmac.compare_digest`` against every
stored digest, so neither a match nor its position leaks through timing. Limits are token
buckets: requests per minute are taken up front; tokens per minute are charged after the answer
(the count is only known then) and a key whose bucket is empty is refused until it refills. The
buckets live in a rate-limit store (:mod:`junto.stores`: in this process by default, in Redis when
several gateways share them); their arithmetic is :mod:`junto.stores.buckets`, re-exported here.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from junto.stores.buckets import MAX_BUCKETS, Bucket, RateLimiter

__all__ = ["MAX_BUCKETS", "Bucket", "KeyInfo", "KeyStore", "RateLimiter"]


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
