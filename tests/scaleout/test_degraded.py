"""Redis killed under the stores: they answer from local state, warn once, and go back to Redis when it returns."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from junto.config import StoreSettings
from junto.stores import redis_stores


async def wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_stores_serve_locally_while_redis_is_down_and_reconnect(redis_server, caplog):
    prefix = f"d{uuid.uuid4().hex[:8]}"
    s = redis_stores(StoreSettings(url=redis_server.url, prefix=prefix, retry_s=0.2))
    await s.start()
    try:
        assert s.status() == "ok"
        assert [await s.limits.check("k", 3, None) for _ in range(3)] == [0, 0, 0]
        assert await s.limits.check("k", 3, None) > 0
        await s.conversations.put("c", {"n": 1})
        redis_server.kill()
        caplog.set_level(logging.WARNING, logger="junto.stores")
        t0 = time.perf_counter()
        # down: every call still answers, from this process's state (a fresh, full bucket here)
        assert [await s.limits.check("k", 3, None) for _ in range(3)] == [0, 0, 0]
        assert await s.limits.check("k", 3, None) > 0
        await s.limits.charge_tokens("k", 100, 10)
        await s.cooldowns.cool("dep", 5, "me")
        assert "dep" in await s.cooldowns.cooling(["dep"])
        assert await s.conversations.get("c") is None  # written to Redis before the outage: not here
        await s.conversations.put("c", {"n": 2})
        assert await s.conversations.get("c") == {"n": 2}
        rid = await s.experiences.add({"q": "while down"})
        assert (await s.experiences.get(rid))["q"] == "while down"
        assert time.perf_counter() - t0 < 1.0, "calls waited on the dead Redis"
        assert s.status() == "degraded" and s.connection.outages == 1 and s.connection.fallbacks >= 10
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
        assert redis_server.url.split("//")[1] in warnings[0].getMessage()

        redis_server.start()  # same port, empty
        await wait_for(lambda: s.connection.up)
        assert s.status() == "ok"
        assert any("answers again" in r.getMessage() for r in caplog.records)
        fallbacks = s.connection.fallbacks
        assert [await s.limits.check("k2", 2, None) for _ in range(3)][:2] == [0, 0]
        client = redis_server.client()
        try:
            assert client.exists(f"{prefix}:rl:{{k2}}:r") == 1  # the bucket is in Redis again
        finally:
            client.close()
        assert s.connection.fallbacks == fallbacks
    finally:
        await s.aclose()


async def test_a_redis_that_is_down_at_start_leaves_the_stores_degraded_not_failed(redis_server, caplog):
    url = redis_server.url
    redis_server.kill()
    caplog.set_level(logging.WARNING, logger="junto.stores")
    s = redis_stores(StoreSettings(url=url, retry_s=0.2))
    await s.start()
    try:
        assert s.status() == "degraded"
        assert await s.limits.check("k", 1, None) == 0
        redis_server.start()
        await wait_for(lambda: s.connection.up)
        assert s.status() == "ok"
    finally:
        await s.aclose()
