"""Monitor state in the shared store: two guards (two gateway replicas) over one real redis-server."""

from __future__ import annotations

import pytest
from helpers import free_port

from junto.config import MonitorSettings, StoreSettings
from junto.monitors.classifier import ClassifierMonitor
from junto.monitors.guard import Guard
from junto.stores import redis_stores


@pytest.fixture
def redis_url(tmp_path):
    from scaleout.conftest import RedisServer, require_redis

    srv = RedisServer(require_redis(), free_port(), tmp_path)
    srv.start()
    try:
        yield srv.url
    finally:
        srv.stop()


async def test_a_conversation_blocked_on_one_replica_is_refused_on_the_other(redis_url):
    stores = [redis_stores(StoreSettings(url=redis_url, prefix="monitor-test")) for _ in range(2)]
    for s in stores:
        await s.start()
    try:
        always = ClassifierMonitor(threshold=0.0)  # flags every list: the store is what is tested
        settings = MonitorSettings(kind="classifier", ttl_s=30)
        a, b = (Guard(settings, s.conversations) for s in stores)
        a.monitor = b.monitor = always
        d = await a.check([{"role": "user", "content": "first request"}], header="shared-conv")
        assert d.refuse and d.event == "blocked"
        d = await b.check([{"role": "user", "content": "second request"}], header="shared-conv")
        assert d.refuse and d.event == "refused-earlier" and d.turn == 2
        assert stores[0].status() == "ok" and stores[1].status() == "ok"
    finally:
        for s in stores:
            await s.aclose()


async def test_concurrent_requests_of_one_conversation_are_checked_in_turn(redis_url):
    """Requests of one conversation checked at the same moment by one guard each see the others' requests
    (every store read and write is a real round trip to Redis, where a read-score-write race would keep only
    the last writer's list)."""
    import asyncio

    store = redis_stores(StoreSettings(url=redis_url, prefix="monitor-race"))
    await store.start()
    try:
        g = Guard(MonitorSettings(kind="classifier", ttl_s=30, max_requests=32), store.conversations)
        g.monitor = ClassifierMonitor(threshold=1.0)  # never flags: the cumulative list is what is tested
        ds = await asyncio.gather(*(g.check([{"role": "user", "content": f"step {i}"}], header="race")
                                    for i in range(6)))
        assert sorted(d.turn for d in ds) == [1, 2, 3, 4, 5, 6]
        state = await store.conversations.get("monitor:" + ds[0].conversation)
        assert sorted(state["requests"]) == [f"step {i}" for i in range(6)]
    finally:
        await store.aclose()
