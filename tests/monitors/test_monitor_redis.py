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
