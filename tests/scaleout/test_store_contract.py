"""One contract, two stores: the in-process store and the Redis store (a real redis-server) behave alike.

Rate limits run on an injected clock (the Redis script takes it as an argument instead of Redis's
own ``TIME``), so refills are exact; expiries run on real time with short lives.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

import pytest
from junto.stores.memory_store import (
    InProcessConversations,
    InProcessCooldowns,
    InProcessExperiences,
    InProcessRateLimits,
)

T0 = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


class Kit:
    """Stores of one kind, built with the limits a test needs."""

    def __init__(self, kind: str, redis_url: str | None):
        self.kind, self.redis_url = kind, redis_url
        self.conns: list = []
        self.limiters: list = []

    def _conn(self):
        from junto.stores.redis_store import RedisConnection

        conn = RedisConnection(self.redis_url, prefix=f"t{uuid.uuid4().hex[:8]}", timeout_s=2.0)
        self.conns.append(conn)
        return conn

    def limits(self, clock):
        if self.kind == "memory":
            return InProcessRateLimits(clock)
        from junto.stores.redis_store import RedisRateLimits

        limits = RedisRateLimits(self._conn(), clock=clock)
        self.limiters.append(limits)
        return limits

    def cooldowns(self):
        if self.kind == "memory":
            return InProcessCooldowns()
        from junto.stores.redis_store import RedisCooldowns

        return RedisCooldowns(self._conn())

    def conversations(self, ttl_s=60.0, max_events=1000):
        if self.kind == "memory":
            return InProcessConversations(ttl_s, max_events=max_events)
        from junto.stores.redis_store import RedisConversations

        return RedisConversations(self._conn(), ttl_s, max_events=max_events)

    def experiences(self, ttl_s=60.0, max_records=1000):
        if self.kind == "memory":
            return InProcessExperiences(ttl_s, max_records=max_records)
        from junto.stores.redis_store import RedisExperiences

        return RedisExperiences(self._conn(), ttl_s, max_records)

    async def close(self) -> None:
        for limits in self.limiters:
            await limits.aclose()
        for conn in self.conns:
            # every command of the contract went to Redis: none was served locally
            assert conn.up and conn.fallbacks == 0, f"Redis store fell back to local state ({conn.fallbacks})"
            await conn.aclose()


@pytest.fixture(params=["memory", "redis"])
async def kit(request):
    url = request.getfixturevalue("module_redis").url if request.param == "redis" else None
    k = Kit(request.param, url)
    yield k
    await k.close()


# -- rate limits -----------------------------------------------------------------------------
async def test_requests_per_minute_admits_exactly_n_then_says_when(kit):
    clock = Clock()
    rl = kit.limits(clock)
    assert [await rl.check("k", 5, None) for _ in range(5)] == [0] * 5
    assert await rl.check("k", 5, None) == 12  # one request refills every 60/5 s
    assert await rl.check("other", 5, None) == 0  # buckets are per client
    clock.t += 11.5
    assert await rl.check("k", 5, None) == 1  # 0.5 s short of a whole request
    clock.t += 0.5
    assert await rl.check("k", 5, None) == 0
    assert await rl.check("k", 5, None) == 12


async def test_a_bucket_never_holds_more_than_a_minute(kit):
    clock = Clock()
    rl = kit.limits(clock)
    assert await rl.check("k", 3, None) == 0
    clock.t += 3600  # an hour idle still allows only 3 at once
    assert [await rl.check("k", 3, None) for _ in range(4)] == [0, 0, 0, 20]


async def test_tokens_are_charged_after_the_answer_and_can_go_negative(kit):
    clock = Clock()
    rl = kit.limits(clock)
    assert await rl.check("k", None, 100) == 0
    await rl.charge_tokens("k", 100, 150)  # level 100 - 150 = -50
    assert await rl.check("k", None, 100) == 31  # (1 + 50) tokens at 100/60 per s = 30.6 s
    clock.t += 30.5
    assert await rl.check("k", None, 100) == 1
    clock.t += 0.5
    assert await rl.check("k", None, 100) == 0


async def test_a_token_limit_refusal_takes_no_request(kit):
    clock = Clock()
    rl = kit.limits(clock)
    await rl.charge_tokens("k", 60, 60)  # tokens exhausted
    for _ in range(3):
        assert await rl.check("k", 2, 60) == 1
    clock.t += 1.0
    assert [await rl.check("k", 2, 60) for _ in range(3)] == [0, 0, 30]  # both requests were still there


async def test_no_limit_admits_everything(kit):
    rl = kit.limits(Clock())
    assert [await rl.check("k", None, None) for _ in range(50)] == [0] * 50
    await rl.charge_tokens("k", None, 10**9)  # no token limit: nothing to charge


# -- cool-downs ------------------------------------------------------------------------------
async def test_cooldowns_expire_clear_and_replace(kit):
    cd = kit.cooldowns()
    assert await cd.cooling(["a", "b"]) == {}
    await cd.cool("a", 0.4, "replica-1")
    got = await cd.cooling(["a", "b"])
    assert list(got) == ["a"] and 0 < got["a"] <= 0.4
    await asyncio.sleep(0.5)
    assert await cd.cooling(["a", "b"]) == {}
    await cd.cool("b", 30, "replica-1")
    await cd.cool("b", 5, "replica-2")  # the latest word wins
    assert 4 < (await cd.cooling(["b"]))["b"] <= 5
    await cd.clear("b")
    assert await cd.cooling(["a", "b"]) == {}


# -- conversations ---------------------------------------------------------------------------
async def test_conversation_state_and_events(kit):
    conv = kit.conversations(max_events=3)
    assert await conv.get("c1") is None and await conv.events("c1") == []
    await conv.put("c1", {"turns": 1, "flags": ["x"]})
    await conv.put("c1", {"turns": 2, "flags": []})
    assert await conv.get("c1") == {"turns": 2, "flags": []}
    assert [await conv.append("c1", {"i": i}) for i in range(5)] == [1, 2, 3, 3, 3]
    assert await conv.events("c1") == [{"i": 2}, {"i": 3}, {"i": 4}]  # the oldest went first
    assert await conv.get("c2") is None
    await conv.delete("c1")
    assert await conv.get("c1") is None and await conv.events("c1") == []


async def test_conversations_expire(kit):
    conv = kit.conversations(ttl_s=0.3)
    await conv.put("c", {"a": 1})
    await conv.append("c", {"e": 1})
    await conv.put("long", {"a": 2}, ttl_s=30)
    await asyncio.sleep(0.45)
    assert await conv.get("c") is None and await conv.events("c") == []
    assert await conv.get("long") == {"a": 2}


async def test_only_json_is_stored(kit):
    conv = kit.conversations()
    with pytest.raises(TypeError, match="plain JSON"):
        await conv.put("c", {"when": object()})
    with pytest.raises(TypeError, match="mapping"):
        await conv.append("c", ["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="plain JSON"):
        await kit.experiences().add({"x": float("nan")})


# -- experience memory -----------------------------------------------------------------------
async def test_experiences_newest_first_capped_and_deletable(kit):
    exp = kit.experiences(max_records=3)
    ids = []
    for i in range(4):
        ids.append(await exp.add({"question": f"q{i}", "answer": str(i)}))
        await asyncio.sleep(0.002)  # distinct creation times
    got = await exp.get(ids[3])
    assert got["question"] == "q3" and got["id"] == ids[3] and isinstance(got["created"], float)
    assert [r["question"] for r in await exp.recent()] == ["q3", "q2", "q1"]  # q0 went past the cap
    assert await exp.get(ids[0]) is None
    assert [r["question"] for r in await exp.recent(limit=2)] == ["q3", "q2"]
    await exp.delete(ids[2])
    assert [r["question"] for r in await exp.recent()] == ["q3", "q1"]


async def test_experiences_expire(kit):
    exp = kit.experiences(ttl_s=0.3)
    short = await exp.add({"q": "short-lived"})
    keep = await exp.add({"q": "kept"}, ttl_s=30)
    await asyncio.sleep(0.45)
    assert await exp.get(short) is None
    assert [r["id"] for r in await exp.recent()] == [keep]


# -- Redis only: state is shared between processes ---------------------------------------------
async def test_state_written_by_one_process_is_read_by_another(module_redis):
    from junto.config import StoreSettings
    from junto.stores import redis_stores

    prefix = f"x{uuid.uuid4().hex[:8]}"
    writer = f"""
import asyncio, json
from junto.config import StoreSettings
from junto.stores import redis_stores
async def main():
    s = redis_stores(StoreSettings(url={module_redis.url!r}, prefix={prefix!r}))
    await s.start()
    await s.conversations.put("conv-1", {{"turns": 3}})
    await s.conversations.append("conv-1", {{"flag": "loop"}})
    rid = await s.experiences.add({{"question": "2+2", "answer": "4"}})
    await s.cooldowns.cool("dep-a", 30, "writer")
    assert [await s.limits.check("key-1", 2, None) for _ in range(2)] == [0, 0]
    print(json.dumps({{"rid": rid, "up": s.connection.up}}))
    await s.aclose()
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", writer], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    wrote = json.loads(out.stdout)
    assert wrote["up"] is True
    s = redis_stores(StoreSettings(url=module_redis.url, prefix=prefix))
    await s.start()
    try:
        assert await s.conversations.get("conv-1") == {"turns": 3}
        assert await s.conversations.events("conv-1") == [{"flag": "loop"}]
        assert (await s.experiences.get(wrote["rid"]))["answer"] == "4"
        assert 25 < (await s.cooldowns.cooling(["dep-a", "dep-b"]))["dep-a"] <= 30
        assert await s.limits.check("key-1", 2, None) > 0  # the writer took both requests
        assert s.connection.fallbacks == 0
    finally:
        await s.aclose()


async def test_tokens_charged_by_one_replica_bind_the_other(module_redis):
    from junto.stores.redis_store import RedisConnection, RedisRateLimits

    prefix = f"c{uuid.uuid4().hex[:8]}"
    a_conn, b_conn = (RedisConnection(module_redis.url, prefix=prefix) for _ in range(2))
    a, b = RedisRateLimits(a_conn, flush_s=0.05), RedisRateLimits(b_conn)
    try:
        assert await a.check("k", None, 600) == 0
        await a.charge_tokens("k", 600, 1200)  # two minutes' worth, sent by A's background flush
        await asyncio.sleep(0.3)
        seen_by_b = await b.check("k", None, 600)
        assert 57 <= seen_by_b <= 61, seen_by_b  # (1 + 600) tokens at 10 per s, less the refill since
        await a.charge_tokens("k", 600, 50)
        assert await a.check("k", None, 600) >= seen_by_b + 4  # a check carries the pending charge with it
    finally:
        for limits, conn in ((a, a_conn), (b, b_conn)):
            await limits.aclose()
            assert conn.fallbacks == 0
            await conn.aclose()


async def test_every_key_expires(module_redis):
    """Nothing the stores write lives forever: every key has a TTL."""
    from junto.config import StoreSettings
    from junto.stores import redis_stores

    prefix = f"e{uuid.uuid4().hex[:8]}"
    s = redis_stores(StoreSettings(url=module_redis.url, prefix=prefix))
    await s.start()
    try:
        await s.limits.check("k", 10, 100)
        await s.limits.charge_tokens("k", 100, 40)
        await s.cooldowns.cool("d", 5, "me")
        await s.conversations.put("c", {"a": 1})
        await s.conversations.append("c", {"e": 1})
        await s.experiences.add({"q": 1})
    finally:
        await s.aclose()
    client = module_redis.client()
    try:
        keys = client.keys(f"{prefix}:*")
        assert len(keys) == 7, keys  # 2 buckets, 1 cool-down, conversation + events, record + index
        ttls = {k: client.pttl(k) for k in keys}
        assert all(ms > 0 for ms in ttls.values()), ttls
    finally:
        client.close()
