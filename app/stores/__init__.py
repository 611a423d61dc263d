"""Stores: the state a request can read or write, behind small async interfaces (``junto.stores.base``).

Built once from configuration by :func:`build_stores` and injected into ``Junto`` (which shares its
cool-downs through them) and ``create_app`` (which keeps its rate limits in them)::

    store: memory                          # default: this process (junto.stores.memory_store)
    store: redis://127.0.0.1:6379/0        # shared by every replica (junto.stores.redis_store)
    checkpoints: sqlite:///runs.db         # strategy runs resume after a crash (junto.stores.checkpoints)

Modules: ``base`` (the interfaces), ``buckets`` (token-bucket arithmetic), ``memory_store`` and
``redis_store`` (the two implementations), ``health_sync`` (cool-downs between a HealthTracker and a
store), ``checkpoints`` (LangGraph savers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from junto.stores.base import (
    ConversationStore,
    CooldownStore,
    ExperienceRecords,
    RateLimitStore,
)
from junto.stores.memory_store import (
    InProcessConversations,
    InProcessCooldowns,
    InProcessExperiences,
    InProcessRateLimits,
)

if TYPE_CHECKING:
    from junto.config import JuntoConfig, StoreSettings
    from junto.stores.checkpoints import Checkpoints
    from junto.stores.redis_store import RedisConnection

__all__ = ["ConversationStore", "CooldownStore", "ExperienceRecords", "RateLimitStore", "Stores", "build_stores",
           "memory_stores", "redis_stores"]


@dataclass
class Stores:
    """One set of stores. ``connection`` is the Redis connection behind them (None: in this process)."""

    limits: RateLimitStore
    cooldowns: CooldownStore
    conversations: ConversationStore
    experiences: ExperienceRecords
    checkpoints: Checkpoints | None = None
    connection: RedisConnection | None = None
    #: how often cool-downs are shared with other replicas (only when ``shared``)
    health_sync_s: float = 0.5
    _started: bool = False

    @property
    def shared(self) -> bool:
        """True when other processes see this state (a Redis store)."""
        return self.connection is not None

    @property
    def kind(self) -> str:
        return "redis" if self.connection is not None else "memory"

    def status(self) -> str:
        """``memory`` (in this process), ``ok`` (Redis answers) or ``degraded`` (Redis down: local state)."""
        if self.connection is None:
            return "memory"
        return "ok" if self.connection.up else "degraded"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "status": self.status()}
        if self.connection is not None:
            out.update(url=self.connection.safe_url, fallbacks=self.connection.fallbacks,
                       outages=self.connection.outages)
        if self.checkpoints is not None:
            out["checkpoints"] = self.checkpoints.kind
        return out

    async def start(self) -> None:
        """Connect (a Redis that does not answer leaves the stores degraded, not failed); idempotent."""
        if not self._started:
            self._started = True
            if self.connection is not None:
                await self.connection.start()

    async def aclose(self) -> None:
        if self.checkpoints is not None:
            await self.checkpoints.aclose()
        if self.connection is not None and self._started:
            closing = getattr(self.limits, "aclose", None)
            if closing is not None:  # tokens charged but not yet sent
                await closing()
            await self.connection.aclose()
        self._started = False


def memory_stores(settings: StoreSettings | None = None, checkpoints: Checkpoints | None = None) -> Stores:
    """Every store in this process."""
    from junto.config import StoreSettings

    s = settings or StoreSettings()
    return Stores(InProcessRateLimits(), InProcessCooldowns(), InProcessConversations(s.conversation_ttl_s),
                  InProcessExperiences(s.experience_ttl_s, max_records=s.max_experiences), checkpoints,
                  health_sync_s=s.health_sync_s)


def redis_stores(settings: StoreSettings, checkpoints: Checkpoints | None = None) -> Stores:
    """Every store in the Redis at ``settings.url`` (the connection is made on first use)."""
    try:
        from junto.stores.redis_store import (
            RedisConnection,
            RedisConversations,
            RedisCooldowns,
            RedisExperiences,
            RedisRateLimits,
        )
    except ImportError:
        from junto.errors import ConfigError

        raise ConfigError("store: a Redis URL needs the redis package", hint="pip install 'junto[stores]'") from None
    conn = RedisConnection(settings.url, timeout_s=settings.timeout_s, retry_s=settings.retry_s,
                           prefix=settings.prefix)
    return Stores(RedisRateLimits(conn), RedisCooldowns(conn),
                  RedisConversations(conn, settings.conversation_ttl_s),
                  RedisExperiences(conn, settings.experience_ttl_s, settings.max_experiences), checkpoints,
                  connection=conn, health_sync_s=settings.health_sync_s)


def build_stores(config: JuntoConfig) -> Stores:
    """The stores a junto config names (``store:`` and ``checkpoints:``)."""
    checkpoints = None
    if config.checkpoints is not None:
        from junto.stores.checkpoints import Checkpoints

        base = config.source.parent if config.source is not None else None
        checkpoints = Checkpoints(config.checkpoints.url, config.checkpoints.strategies, base)
    if config.store.shared:
        return redis_stores(config.store, checkpoints)
    return memory_stores(config.store, checkpoints)
