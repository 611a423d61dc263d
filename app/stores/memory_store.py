"""The in-process store: every interface of :mod:`junto.stores.base` in this process's memory.

The default (``store: memory``): one gateway, or the SDK, needs nothing else. Everything is bounded
(least recently used entries go first) and expires like its Redis counterpart. It is also what a
Redis-backed gateway falls back to while Redis is unreachable. The clock is injectable; entries
expire by the monotonic clock, while records carry wall-clock ``created`` times.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from junto.stores.base import (
    ConversationStore,
    CooldownStore,
    ExperienceRecords,
    RateLimitStore,
    dumps,
)
from junto.stores.buckets import MAX_BUCKETS, RateLimiter

#: conversations and experience records kept at most, per store
MAX_ENTRIES = 100_000
#: events kept per conversation (the oldest go first)
MAX_EVENTS = 1_000


class InProcessRateLimits(RateLimitStore):
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_clients: int = MAX_BUCKETS):
        self.limiter = RateLimiter(clock, max_clients)

    async def check(self, who: str, rpm: int | None, tpm: int | None) -> int:
        return self.limiter.check(who, rpm, tpm)

    async def charge_tokens(self, who: str, tpm: int | None, tokens: int) -> None:
        self.limiter.charge_tokens(who, tpm, tokens)


class InProcessCooldowns(CooldownStore):
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._until: dict[str, tuple[float, str]] = {}

    async def cool(self, deployment: str, seconds: float, origin: str) -> None:
        self._until[deployment] = (self.clock() + seconds, origin)

    async def clear(self, deployment: str) -> None:
        self._until.pop(deployment, None)

    async def cooling(self, deployments: Sequence[str]) -> dict[str, float]:
        now = self.clock()
        out = {}
        for name in deployments:
            entry = self._until.get(name)
            if entry is None:
                continue
            if entry[0] <= now:
                del self._until[name]
            else:
                out[name] = entry[0] - now
        return out


class _Expiring(OrderedDict):
    """key → (expires_at, value), least recently written first, at most ``limit`` entries."""

    def __init__(self, clock: Callable[[], float], limit: int):
        super().__init__()
        self.clock, self.limit = clock, limit

    def put(self, key: str, value: Any, ttl_s: float) -> None:
        self[key] = (self.clock() + ttl_s, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)

    def live(self, key: str) -> Any:
        entry = self.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self[key]
            return None
        return entry[1]


class InProcessConversations(ConversationStore):
    def __init__(self, ttl_s: float = 86_400.0, clock: Callable[[], float] = time.monotonic,
                 max_conversations: int = MAX_ENTRIES, max_events: int = MAX_EVENTS):
        self.ttl_s, self.max_events = ttl_s, max_events
        self._state = _Expiring(clock, max_conversations)
        self._events = _Expiring(clock, max_conversations)

    async def get(self, conversation_id: str) -> dict[str, Any] | None:
        text = self._state.live(conversation_id)
        return None if text is None else json.loads(text)

    async def put(self, conversation_id: str, state: Mapping[str, Any], ttl_s: float | None = None) -> None:
        self._state.put(conversation_id, dumps(state, "conversation state"), ttl_s or self.ttl_s)

    async def append(self, conversation_id: str, event: Mapping[str, Any], ttl_s: float | None = None) -> int:
        text = dumps(event, "conversation event")
        log = self._events.live(conversation_id) or []
        log = (log + [text])[-self.max_events:]
        self._events.put(conversation_id, log, ttl_s or self.ttl_s)
        return len(log)

    async def events(self, conversation_id: str) -> list[dict[str, Any]]:
        return [json.loads(t) for t in self._events.live(conversation_id) or []]

    async def delete(self, conversation_id: str) -> None:
        self._state.pop(conversation_id, None)
        self._events.pop(conversation_id, None)


class InProcessExperiences(ExperienceRecords):
    def __init__(self, ttl_s: float = 30 * 86_400.0, clock: Callable[[], float] = time.monotonic,
                 max_records: int = MAX_ENTRIES, wall: Callable[[], float] = time.time):
        self.ttl_s, self.wall = ttl_s, wall
        self._records = _Expiring(clock, max_records)

    async def add(self, record: Mapping[str, Any], ttl_s: float | None = None) -> str:
        rid = uuid.uuid4().hex
        text = dumps({**record, "id": rid, "created": self.wall()}, "experience record")
        self._records.put(rid, text, ttl_s or self.ttl_s)
        return rid

    async def get(self, record_id: str) -> dict[str, Any] | None:
        text = self._records.live(record_id)
        return None if text is None else json.loads(text)

    async def recent(self, limit: int = 1000) -> list[dict[str, Any]]:
        out = []
        for rid in reversed(list(self._records)):
            if len(out) >= limit:
                break
            text = self._records.live(rid)
            if text is not None:
                out.append(json.loads(text))
        return out

    async def delete(self, record_id: str) -> None:
        self._records.pop(record_id, None)
