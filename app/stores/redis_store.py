"""The Redis store: every interface of :mod:`junto.stores.base` shared by several gateway replicas.

``store: redis://host:6379/0`` in the junto config. redis-py's asyncio client, one connection pool
per process, short socket timeouts. Every key carries an expiry (a rate-limit bucket expires once
it would be full again; cool-downs, conversations and experience records after their time to live),
so Redis never fills with clients seen once.

* Rate limits are token buckets updated by one server-side Lua script per request, atomically, on
  Redis's own clock (``TIME``): a key limited to N requests a minute gets exactly N through any
  number of replicas, whatever their clocks say.
* Cool-downs are keys with a PX expiry; :class:`~junto.stores.health_sync.HealthSync` publishes this
  replica's and applies the others' in the background, off the request path.
* Conversations are a JSON string plus an event list; experience records are JSON strings indexed by
  a sorted set (newest first; entries whose record expired are pruned when listed).

When Redis is unreachable (killed, restarting, a network cut) a :class:`RedisConnection` marks it
down on the first failed command, logs one warning, and every store serves from its in-process twin
(:mod:`junto.stores.memory_store`) without waiting on Redis again; a background task pings it every
``retry_s`` and switches back when it answers (one info line). Requests are never failed for want of
Redis: limits become per-replica while it is down, cool-downs stay local, and state written
meanwhile lives in the writing process only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from junto.stores.base import (
    ConversationStore,
    CooldownStore,
    ExperienceRecords,
    RateLimitStore,
    dumps,
)
from junto.stores.buckets import retry_seconds
from junto.stores.memory_store import (
    MAX_ENTRIES,
    MAX_EVENTS,
    InProcessConversations,
    InProcessCooldowns,
    InProcessExperiences,
    InProcessRateLimits,
)
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger("junto.stores")

T = TypeVar("T")

#: what makes a command fail for reasons that are Redis's, not the caller's: serve locally instead
_UNREACHABLE = (RedisError, OSError, asyncio.TimeoutError)


def masked(url: str) -> str:
    """``url`` without its password, for logs and status pages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


class RedisConnection:
    """One Redis client, whether it is reachable, and the switch to local state while it is not."""

    def __init__(self, url: str, *, timeout_s: float = 0.25, retry_s: float = 1.0, prefix: str = "junto"):
        self.url = url
        self.safe_url = masked(url)
        self.prefix = prefix
        self.retry_s = retry_s
        # one quick retry on a fresh connection (a pooled one may be dead after a Redis restart), no backoff:
        # the request waits on Redis for at most ~2 timeouts, then is served locally
        self.client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                              retry=Retry(NoBackoff(), 1), decode_responses=True,
                                              health_check_interval=0)
        self.up = True
        self.down_since: float | None = None
        #: operations served from local state because Redis was unreachable
        self.fallbacks = 0
        #: transitions to "down"
        self.outages = 0
        self._watch: asyncio.Task | None = None
        self._listeners: list[Callable[[], None]] = []

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def on_reconnect(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` (no arguments, in the event loop) each time Redis answers again after an outage."""
        self._listeners.append(fn)

    async def start(self) -> None:
        """Check Redis once; if it does not answer, start degraded (and keep trying in the background)."""
        try:
            await self.client.ping()
        except _UNREACHABLE as exc:
            self.failed(exc)

    async def run(self, op: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]) -> T:
        """``op()`` on Redis; ``fallback()`` (local state) when Redis is down or fails now."""
        if self.up:
            try:
                return await op()
            except _UNREACHABLE as exc:
                self.failed(exc)
        self.fallbacks += 1
        return await fallback()

    def failed(self, exc: BaseException) -> None:
        """A command failed: mark Redis down (warning once per outage) and start pinging it back."""
        if not self.up:
            return
        self.up = False
        self.down_since = time.time()
        self.outages += 1
        log.warning("store %s unreachable (%s: %s); serving from this process's state until it answers again",
                    self.safe_url, exc.__class__.__name__, exc)
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._reconnect(), name="junto-store-reconnect")

    async def _reconnect(self) -> None:
        while not self.up:
            await asyncio.sleep(self.retry_s)
            try:
                await self.client.ping()
            except _UNREACHABLE:
                continue
            down = time.time() - (self.down_since or time.time())
            self.up, self.down_since = True, None
            log.warning("store %s answers again after %.1f s; shared state resumed", self.safe_url, down)
            for fn in self._listeners:
                fn()

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            try:
                await self._watch
            except asyncio.CancelledError:
                pass
            self._watch = None
        await self.client.aclose()


#: admit one request: KEYS = request bucket, token bucket; ARGV = rpm, tpm (0: no limit), now ('' = Redis TIME),
#: tokens answered since the last call (charged first). Returns the seconds to wait as a string (0: admitted,
#: one request taken). The same arithmetic as junto.stores.buckets, operation for operation.
CHECK_LUA = """
local rpm, tpm, charge = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local now
if ARGV[3] ~= '' then now = tonumber(ARGV[3]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1000000 end
local function level(key, cap)
  local v = redis.call('HMGET', key, 'l', 't')
  if not v[1] then return cap end
  local l = tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * (cap / 60)
  if l > cap then return cap end
  return l
end
local wait = 0
if tpm > 0 then
  local tl = level(KEYS[2], tpm)
  if charge > 0 then
    tl = tl - charge
    redis.call('HSET', KEYS[2], 'l', string.format('%.17g', tl), 't', string.format('%.17g', now))
    redis.call('PEXPIRE', KEYS[2], math.ceil((tpm - tl) / (tpm / 60) * 1000) + 1000)
  end
  if tl < 1 then wait = (1 - tl) / (tpm / 60) end
end
if rpm > 0 then
  local rl = level(KEYS[1], rpm)
  if rl >= 1 then
    if wait == 0 then
      rl = rl - 1
      redis.call('HSET', KEYS[1], 'l', string.format('%.17g', rl), 't', string.format('%.17g', now))
      redis.call('PEXPIRE', KEYS[1], math.ceil((rpm - rl) / (rpm / 60) * 1000) + 1000)
    end
  else
    local w = (1 - rl) / (rpm / 60)
    if w > wait then wait = w end
  end
end
return string.format('%.17g', wait)
"""

#: charge tokens after an answer: KEYS = token bucket; ARGV = tpm, tokens, now ('' = Redis TIME)
CHARGE_LUA = """
local tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2])
local now
if ARGV[3] ~= '' then now = tonumber(ARGV[3]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1000000 end
local v = redis.call('HMGET', KEYS[1], 'l', 't')
local l = tpm
if v[1] then
  l = tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * (tpm / 60)
  if l > tpm then l = tpm end
end
l = l - tokens
redis.call('HSET', KEYS[1], 'l', string.format('%.17g', l), 't', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((tpm - l) / (tpm / 60) * 1000) + 1000)
return 1
"""


class RedisRateLimits(RateLimitStore):
    """Token buckets in Redis, updated atomically by :data:`CHECK_LUA` and :data:`CHARGE_LUA`.

    One round trip per request: the request limit is checked and taken by one script call, exactly.
    Tokens answered are charged with the same client's next check (same script call), or by a
    background flush within ``flush_s`` when no next check comes — a lag far below the answer's own
    (tokens are only counted once an answer ends). ``clock``: None uses Redis's clock (production: one
    clock for every replica, whatever theirs say); tests pass their own.
    """

    def __init__(self, conn: RedisConnection, clock: Callable[[], float] | None = None, flush_s: float = 0.1):
        self.conn = conn
        self.clock = clock
        self.flush_s = flush_s
        self.local = InProcessRateLimits(clock or time.monotonic)
        self._check = conn.client.register_script(CHECK_LUA)
        self._charge = conn.client.register_script(CHARGE_LUA)
        #: who → [tpm, tokens not yet charged in Redis]
        self._pending: dict[str, list[int]] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task] = set()

    def _keys(self, who: str) -> list[str]:
        # one hash tag per client: both buckets land in one slot (Redis Cluster runs the script then)
        return [self.conn.key("rl", f"{{{who}}}", "r"), self.conn.key("rl", f"{{{who}}}", "t")]

    def _now(self) -> str:
        return "" if self.clock is None else repr(self.clock())

    async def check(self, who: str, rpm: int | None, tpm: int | None) -> int:
        if not rpm and not tpm:
            return 0
        pending = self._pending.pop(who, None)
        charge = pending[1] if pending and tpm else 0

        async def op() -> int:
            wait = await self._check(keys=self._keys(who), args=[rpm or 0, tpm or 0, self._now(), charge])
            return retry_seconds(float(wait))

        async def fallback() -> int:
            if charge:
                await self.local.charge_tokens(who, tpm, charge)
            return await self.local.check(who, rpm, tpm)

        return await self.conn.run(op, fallback)

    async def charge_tokens(self, who: str, tpm: int | None, tokens: int) -> None:
        if not tpm or tokens <= 0:
            return
        entry = self._pending.get(who)
        if entry is None:
            self._pending[who] = [tpm, tokens]
        else:
            entry[0], entry[1] = tpm, entry[1] + tokens
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self.flush_s, self._start_flush)

    def _start_flush(self) -> None:
        self._flush = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        """Charge every pending token count now (also done on close)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        pending, self._pending = self._pending, {}
        for who, (tpm, tokens) in pending.items():
            async def op(who: str = who, tpm: int = tpm, tokens: int = tokens) -> None:
                await self._charge(keys=self._keys(who)[1:], args=[tpm, tokens, self._now()])

            async def fallback(who: str = who, tpm: int = tpm, tokens: int = tokens) -> None:
                await self.local.charge_tokens(who, tpm, tokens)

            await self.conn.run(op, fallback)

    async def aclose(self) -> None:
        await self.flush()
        for task in list(self._flushing):
            await task


class RedisCooldowns(CooldownStore):
    """One key per cooling deployment, its value the replica that cooled it, its expiry the cool-down's end."""

    def __init__(self, conn: RedisConnection):
        self.conn = conn
        self.local = InProcessCooldowns()

    def _key(self, deployment: str) -> str:
        return self.conn.key("cool", deployment)

    async def cool(self, deployment: str, seconds: float, origin: str) -> None:
        ms = max(1, int(seconds * 1000))

        async def op() -> None:
            await self.conn.client.set(self._key(deployment), origin, px=ms)

        await self.conn.run(op, lambda: self.local.cool(deployment, seconds, origin))

    async def clear(self, deployment: str) -> None:
        async def op() -> None:
            await self.conn.client.delete(self._key(deployment))

        await self.conn.run(op, lambda: self.local.clear(deployment))

    async def cooling(self, deployments: Sequence[str]) -> dict[str, float]:
        names = list(deployments)

        async def op() -> dict[str, float]:
            async with self.conn.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.pttl(self._key(name))
                ttls = await pipe.execute()
            return {n: ms / 1000 for n, ms in zip(names, ttls) if ms is not None and ms > 0}

        return await self.conn.run(op, lambda: self.local.cooling(names))


class RedisConversations(ConversationStore):
    """``<prefix>:conv:<id>`` holds the state (JSON), ``<prefix>:conv:<id>:ev`` the event list; both expire."""

    def __init__(self, conn: RedisConnection, ttl_s: float = 86_400.0, max_events: int = MAX_EVENTS):
        self.conn, self.ttl_s, self.max_events = conn, ttl_s, max_events
        self.local = InProcessConversations(ttl_s, max_events=max_events)

    def _keys(self, cid: str) -> tuple[str, str]:
        base = self.conn.key("conv", f"{{{cid}}}")
        return base, base + ":ev"

    def _ms(self, ttl_s: float | None) -> int:
        return max(1, int((ttl_s or self.ttl_s) * 1000))

    async def get(self, conversation_id: str) -> dict[str, Any] | None:
        async def op() -> dict[str, Any] | None:
            text = await self.conn.client.get(self._keys(conversation_id)[0])
            return None if text is None else json.loads(text)

        return await self.conn.run(op, lambda: self.local.get(conversation_id))

    async def put(self, conversation_id: str, state: Mapping[str, Any], ttl_s: float | None = None) -> None:
        text = dumps(state, "conversation state")
        key, ev = self._keys(conversation_id)

        async def op() -> None:
            async with self.conn.client.pipeline(transaction=True) as pipe:
                pipe.set(key, text, px=self._ms(ttl_s))
                pipe.pexpire(ev, self._ms(ttl_s))
                await pipe.execute()

        await self.conn.run(op, lambda: self.local.put(conversation_id, state, ttl_s))

    async def append(self, conversation_id: str, event: Mapping[str, Any], ttl_s: float | None = None) -> int:
        text = dumps(event, "conversation event")
        key, ev = self._keys(conversation_id)

        async def op() -> int:
            async with self.conn.client.pipeline(transaction=True) as pipe:
                pipe.rpush(ev, text)
                pipe.ltrim(ev, -self.max_events, -1)
                pipe.pexpire(ev, self._ms(ttl_s))
                pipe.pexpire(key, self._ms(ttl_s))
                length = (await pipe.execute())[0]
            return min(int(length), self.max_events)

        return await self.conn.run(op, lambda: self.local.append(conversation_id, event, ttl_s))

    async def events(self, conversation_id: str) -> list[dict[str, Any]]:
        async def op() -> list[dict[str, Any]]:
            return [json.loads(t) for t in await self.conn.client.lrange(self._keys(conversation_id)[1], 0, -1)]

        return await self.conn.run(op, lambda: self.local.events(conversation_id))

    async def delete(self, conversation_id: str) -> None:
        async def op() -> None:
            await self.conn.client.delete(*self._keys(conversation_id))

        await self.conn.run(op, lambda: self.local.delete(conversation_id))


class RedisExperiences(ExperienceRecords):
    """``<prefix>:exp:<id>`` holds a record (JSON, with its expiry); ``<prefix>:exp:index`` orders them by time."""

    def __init__(self, conn: RedisConnection, ttl_s: float = 30 * 86_400.0, max_records: int = MAX_ENTRIES):
        self.conn, self.ttl_s, self.max_records = conn, ttl_s, max_records
        self.local = InProcessExperiences(ttl_s, max_records=max_records)
        self.index = conn.key("exp", "index")

    def _key(self, rid: str) -> str:
        return self.conn.key("exp", rid)

    async def add(self, record: Mapping[str, Any], ttl_s: float | None = None) -> str:
        rid = uuid.uuid4().hex
        created = time.time()
        text = dumps({**record, "id": rid, "created": created}, "experience record")
        ms = max(1, int((ttl_s or self.ttl_s) * 1000))

        async def op() -> str:
            client = self.conn.client
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(self._key(rid), text, px=ms)
                pipe.zadd(self.index, {rid: created})
                # the index lives as long as its longest-lived record: set an expiry, then only ever extend it
                pipe.pexpire(self.index, ms, nx=True)
                pipe.pexpire(self.index, ms, gt=True)
                pipe.zcard(self.index)
                size = (await pipe.execute())[-1]
            if size > self.max_records:
                oldest = await client.zpopmin(self.index, size - self.max_records)
                if oldest:
                    await client.delete(*(self._key(m) for m, _ in oldest))
            return rid

        async def fallback() -> str:
            return await self.local.add(record, ttl_s)

        return await self.conn.run(op, fallback)

    async def get(self, record_id: str) -> dict[str, Any] | None:
        async def op() -> dict[str, Any] | None:
            text = await self.conn.client.get(self._key(record_id))
            return None if text is None else json.loads(text)

        return await self.conn.run(op, lambda: self.local.get(record_id))

    async def recent(self, limit: int = 1000) -> list[dict[str, Any]]:
        async def op() -> list[dict[str, Any]]:
            client = self.conn.client
            out: list[dict[str, Any]] = []
            start = 0
            while len(out) < limit:
                ids = await client.zrevrange(self.index, start, start + limit - len(out) - 1)
                if not ids:
                    break
                texts = await client.mget([self._key(i) for i in ids])
                gone = [i for i, t in zip(ids, texts) if t is None]
                out += [json.loads(t) for t in texts if t is not None]
                if gone:  # expired records: drop them from the index
                    await client.zrem(self.index, *gone)
                start += len(ids) - len(gone)
            return out

        return await self.conn.run(op, lambda: self.local.recent(limit))

    async def delete(self, record_id: str) -> None:
        async def op() -> None:
            async with self.conn.client.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(record_id))
                pipe.zrem(self.index, record_id)
                await pipe.execute()

        await self.conn.run(op, lambda: self.local.delete(record_id))
