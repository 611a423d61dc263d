"""Cool-downs shared between gateway replicas: a background bridge between a HealthTracker and a CooldownStore.

The request path keeps using :class:`~junto.health.HealthTracker` synchronously and pays nothing for
the sharing. Every ``interval_s`` (and at once when the tracker reports a change) this task:

1. publishes the cool-downs this replica's own failures started (with the time they have left), and
   clears those that ended because the deployment answered again;
2. reads the cool-downs every replica published and applies the others' to the tracker
   (:meth:`~junto.health.HealthTracker.apply_remote`), ending those another replica cleared
   (:meth:`~junto.health.HealthTracker.clear_remote`).

Publishing the state (not just the events) each round also repairs a store that lost its data (a
Redis restarted without persistence). The store's own expiry ends a cool-down whose replica died.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence

from junto.health import HealthTracker
from junto.stores.base import CooldownStore

log = logging.getLogger("junto.stores")


def replica_id() -> str:
    """This process, as other replicas see it in the store: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class HealthSync:
    def __init__(self, tracker: HealthTracker, store: CooldownStore, deployments: Sequence[str], *,
                 interval_s: float = 0.5, origin: str | None = None):
        self.tracker = tracker
        self.store = store
        self.deployments = list(deployments)
        self.interval_s = interval_s
        self.origin = origin or replica_id()
        self._published: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        #: rounds completed (for tests and status pages)
        self.rounds = 0

    def _changed(self, name: str, event: str, seconds: float) -> None:
        self._wake.set()

    def start(self) -> None:
        """Start the background task (inside the running event loop); idempotent."""
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self.tracker.listener = self._changed
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="junto-health-sync")

    async def stop(self) -> None:
        if self.tracker.listener == self._changed:
            self.tracker.listener = None
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.sync_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop sharing for good, nor reach a request
                log.exception("cool-down sync failed; retrying in %.1f s", self.interval_s)
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            except TimeoutError:
                pass
            self._wake.clear()

    async def sync_once(self) -> None:
        """One round: publish ours, apply theirs."""
        mine = {n: left for n, (left, remote) in self.tracker.cooling().items() if not remote}
        for name, left in mine.items():
            await self.store.cool(name, left, self.origin)
        # ours that stopped cooling: still failing (half-open, probing) stays ours; answered again ends it everywhere
        still = {n for n in self._published - mine.keys() if self.tracker.state(n) != "ok"}
        for name in self._published - mine.keys() - still:
            await self.store.clear(name)
        self._published = set(mine) | still
        shared = await self.store.cooling(self.deployments)
        for name in self.deployments:
            if name in self._published:
                continue  # our own verdict stands
            if name in shared:
                self.tracker.apply_remote(name, shared[name])
            else:
                # a margin of two rounds: a cool-down that simply ran out turns half-open here as well
                self.tracker.clear_remote(name, margin_s=2 * self.interval_s)
        self.rounds += 1
