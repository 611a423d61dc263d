"""Cool-downs shared between replicas: two HealthTrackers, one store, the sync rounds run by hand.

Pure logic on one injected clock (the in-process cool-down store runs on it too); the same sync
against a real Redis and two real gateways is in test_two_gateways.py.
"""

from __future__ import annotations

from junto.health import HealthTracker
from junto.stores.health_sync import HealthSync
from junto.stores.memory_store import InProcessCooldowns


class Clock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


def pair(failures: int = 2, seconds: float = 10.0):
    clock = Clock()
    store = InProcessCooldowns(clock)
    a = HealthTracker(failures, seconds, clock=clock)
    b = HealthTracker(failures, seconds, clock=clock)
    names = ["x", "y"]
    return clock, a, b, HealthSync(a, store, names, interval_s=0.5, origin="A"), \
        HealthSync(b, store, names, interval_s=0.5, origin="B")


def test_the_listener_hears_cooldowns_and_recoveries_only():
    clock = Clock()
    h = HealthTracker(2, 10.0, clock=clock)
    heard = []
    h.listener = lambda name, event, seconds: heard.append((name, event, seconds))
    h.failure("x")
    h.success("x")  # one failure of two, then fine: nothing to tell
    assert heard == []
    h.failure("x")
    h.failure("x")
    assert heard == [("x", "cool", 10.0)]
    clock.t += 10
    p = h.try_acquire("x")
    assert p is not None and p.probe
    p.success()
    assert heard[-1] == ("x", "recover", 0.0)


async def test_a_cooldown_seen_by_one_replica_is_applied_by_the_other():
    clock, a, b, sa, sb = pair()
    a.failure("x")
    a.failure("x")
    assert a.state("x") == "cooling" and b.state("x") == "ok"
    await sa.sync_once()
    await sb.sync_once()
    assert b.state("x") == "cooling" and not b.available("x")
    assert b.try_acquire("x") is None
    assert b.cooling() == {"x": (10.0, True)}  # remote: B does not publish it as its own
    await sb.sync_once()
    assert sb._published == set()
    # both turn half-open when the cool-down runs out: one probe each
    clock.t += 10
    await sa.sync_once()
    await sb.sync_once()
    assert a.state("x") == "half-open" and b.state("x") == "half-open"


async def test_a_recovery_ends_the_cooldown_everywhere():
    _, a, b, sa, sb = pair(seconds=30)
    a.failure("x")
    a.failure("x")
    await sa.sync_once()
    await sb.sync_once()
    assert b.state("x") == "cooling"
    a.success("x")  # e.g. a forced call answered
    await sa.sync_once()  # cleared in the store
    await sb.sync_once()
    assert b.state("x") == "ok"


async def test_remote_news_never_shortens_a_replicas_own_cooldown():
    clock, a, b, sa, sb = pair()
    b.failure("y")
    b.failure("y")  # B's own: 10 s
    clock.t += 1
    a.failure("y")
    a.failure("y")  # A's own: 10 s from now, i.e. 1 s after B's
    await sa.sync_once()
    await sb.sync_once()
    assert b.cooling()["y"] == (9.0, False)  # B's own verdict stands, and stays B's
    a.success("y")
    await sa.sync_once()
    await sb.sync_once()
    assert b.state("y") == "cooling"  # A's recovery does not end B's own cool-down


async def test_a_store_that_lost_its_data_is_repaired_by_the_next_round():
    clock, a, b, sa, sb = pair(seconds=20)
    a.failure("x")
    a.failure("x")
    await sa.sync_once()
    await sa.store.clear("x")  # e.g. Redis restarted empty
    clock.t += 5
    await sa.sync_once()  # A republishes what it still believes
    await sb.sync_once()
    assert b.state("x") == "cooling" and b.seconds_left("x") == 15.0
