"""Replicas of one deployment (``backend: openai`` with ``urls``): which base URL the next request goes to.

Pure logic, injectable clock. Requests go to the replicas in turn (round robin), skipping one that
refused a connection in the last ``down_s`` seconds; when every replica is down, the one whose
pause ends first is tried anyway (it may be back). The pool client fails a request over to the next
replica when its connection fails (the request never reached a server, so no answer is duplicated);
errors after the request was sent (5xx, timeouts, broken streams) are the deployment's, handled by
the fallback to the next-ranked deployment as for any deployment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence


class ReplicaSet:
    def __init__(self, urls: Sequence[str], down_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        if not urls:
            raise ValueError("a replica set needs at least one URL")
        self.urls = list(urls)
        self.down_s = down_s
        self.clock = clock
        self._next = 0
        self._down_until = dict.fromkeys(self.urls, 0.0)
        #: requests sent to each replica, and connections each refused (for status pages and tests)
        self.sent = dict.fromkeys(self.urls, 0)
        self.failures = dict.fromkeys(self.urls, 0)

    def pick(self, exclude: Collection[str] = ()) -> str | None:
        """The replica for the next request (not one of ``exclude``); None when ``exclude`` covers them all."""
        now = self.clock()
        n = len(self.urls)
        for i in range(n):
            idx = (self._next + i) % n
            url = self.urls[idx]
            if url not in exclude and self._down_until[url] <= now:
                self._next = idx + 1
                self.sent[url] += 1
                return url
        left = [u for u in self.urls if u not in exclude]
        if not left:
            return None
        url = min(left, key=self._down_until.__getitem__)
        self.sent[url] += 1
        return url

    def failed(self, url: str) -> None:
        """``url`` refused a connection: skip it for ``down_s`` seconds."""
        if url in self._down_until:
            self._down_until[url] = self.clock() + self.down_s
            self.failures[url] += 1

    def is_down(self, url: str) -> bool:
        return self._down_until.get(url, 0.0) > self.clock()

    def base_of(self, url: str) -> str | None:
        """The replica whose base URL ``url`` (a full request URL) starts with."""
        for base in self.urls:
            if url == base or url.startswith(base + "/"):
                return base
        return None
