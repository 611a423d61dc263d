"""The monitor at run time: one check per request, before the model is called.

:meth:`Guard.check` finds the conversation (:mod:`junto.monitors.identity`), reads its state from the
:class:`junto.stores.ConversationStore` (key ``monitor:<conversation>``: the request list, at most
``max_requests`` of the newest, each cut to ``MAX_REQUEST_CHARS``; whether it is blocked; the flag count; expiring
``ttl_s`` after the last write), scores the cumulative request list with the configured monitor and applies the
policy (:mod:`junto.monitors.policy`). Used by the gateway (``create_app``) and the SDK (``Junto.achat``).

A conversation already blocked is refused without scoring. A monitor that fails (its judge deployment down)
lets the request through (``on_error: allow``, logged and counted) or refuses it (``on_error: block``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from junto.errors import ConfigError, JuntoError
from junto.monitors import identity, policy
from junto.monitors.base import Monitor, clip, configs_dir

if TYPE_CHECKING:
    from junto.config import MonitorSettings
    from junto.stores.base import ConversationStore

log = logging.getLogger("junto.monitors")
ARTIFACTS = configs_dir() / "monitors"
PREFIX = "monitor:"
#: the cascade's unsure band for a judge with none tuned (configs/monitors/cascade.json holds the tuned ones)
DEFAULT_BAND = (0.45, 0.7)


@dataclass
class Decision:
    action: str                 # block | flag | log
    refuse: bool                # answer with the refusal, do not call the model
    header: str | None          # x-junto-monitor value, or None
    event: str                  # pass | flagged | blocked | refused-earlier | error
    probability: float | None
    monitor: str
    conversation: str           # the store key (a hash: never the client's id or text)
    source: str                 # header | metadata | user | history | sdk
    turn: int                   # requests seen in this conversation, this one included
    latency_ms: float


def _tuned(name: str) -> dict[str, Any]:
    import json

    path = ARTIFACTS / name
    return json.loads(path.read_text()) if path.is_file() else {}


class Guard:
    """``settings``: :class:`junto.config.MonitorSettings`; ``client``: an async callable giving a started
    PoolClient (the prompted monitor's); ``default_deployment``: the judge when the settings name none."""

    def __init__(self, settings: MonitorSettings, store: ConversationStore,
                 client: Callable[[], Awaitable[Any]] | None = None, default_deployment: str | None = None,
                 deployments: Sequence[str] = ()):
        self.settings, self.store, self._client = settings, store, client
        self.deployment = settings.deployment or default_deployment
        if settings.kind in ("prompted", "cascade"):
            if not self.deployment:
                raise ConfigError("monitor.deployment: the prompted monitor needs a judge deployment",
                                  param="monitor.deployment", hint="name one of the pool's deployments")
            if deployments and self.deployment not in deployments:
                raise ConfigError(f"monitor.deployment: {self.deployment!r} is not in the pool",
                                  param="monitor.deployment", hint=f"choose among: {', '.join(deployments)}")
            if client is None:
                raise ConfigError("the prompted monitor needs a pool client")
        self.monitor: Monitor | None = None
        #: one lock per conversation being checked: its requests are read, scored and written back in turn
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        if settings.kind == "classifier":  # loaded now: a bad artifact fails at start-up, not on a request
            self.monitor = self._classifier()

    def _classifier(self) -> Monitor:
        from junto.monitors.classifier import ClassifierMonitor

        s = self.settings
        return ClassifierMonitor(s.classifier, threshold=s.threshold if s.kind == "classifier" else None)

    async def _build(self) -> Monitor:
        from junto.monitors.cascade import CascadeMonitor
        from junto.monitors.prompted import PromptedMonitor

        s = self.settings
        assert self._client is not None and self.deployment is not None
        tuned = _tuned("prompted.json").get("thresholds", {})
        tau = s.threshold if s.threshold is not None and s.kind == "prompted" else tuned.get(self.deployment, 0.5)
        # untuned judge: 0.5 (the verdict's even odds); the tuned ones are in configs/monitors/prompted.json
        prompted = PromptedMonitor(await self._client(), self.deployment, tau, s.timeout_s)
        if s.kind == "prompted":
            return prompted
        band = s.band or tuple(_tuned("cascade.json").get("bands", {}).get(self.deployment, DEFAULT_BAND))
        return CascadeMonitor(self._classifier(), prompted, float(band[0]), float(band[1]))

    async def check(self, messages: Sequence[Mapping[str, Any]], *, key: str | None = None, model: str | None = None,
                    header: str | None = None, metadata: Any = None, user: Any = None, sdk: str | None = None
                    ) -> Decision | None:
        """The decision for one request, or None when the monitor is off for this key/model or it has no user
        message. Raises ConfigError for a malformed conversation id (the client's to fix)."""
        s = self.settings
        action = policy.action_for(s.action, s.keys, s.models, key, model)
        texts = identity.user_texts(messages)
        if action == "off" or not texts:
            return None
        t0 = time.perf_counter()
        conv = identity.conversation_key(texts, header=header, metadata=metadata, user=user, sdk=sdk)
        name = conv.previous or conv.key
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        # two requests of one conversation at once: the second reads the state the first wrote (in this
        # process; replicas sharing a Redis store may still interleave)
        async with lock:
            return await self._check(s, action, texts, conv, t0)

    async def _check(self, s: MonitorSettings, action: str, texts: list[str], conv: Any, t0: float) -> Decision:
        state = (await self.store.get(PREFIX + conv.previous)) if conv.previous else None
        state = state or {}
        blocked = bool(state.get("blocked"))
        if conv.explicit:
            requests = [*state.get("requests", []), clip(texts[-1])]
        else:
            requests = [clip(t) for t in texts]
        requests = requests[-s.max_requests:]
        turn = int(state.get("turn", 0)) + 1
        probability, flagged, event_override = None, False, None
        if not (blocked and action == "block"):
            try:
                if self.monitor is None:
                    self.monitor = await self._build()
                verdict = await self.monitor.score(requests)
                probability, flagged = verdict.probability, verdict.flagged
            except JuntoError as exc:
                log.warning("monitor %s failed (%s): %s", s.kind, s.on_error, exc.message)
                flagged, event_override = s.on_error == "block", "error"
        out = policy.decide(action, blocked, flagged, probability)
        await self.store.put(PREFIX + conv.key, {"requests": requests, "blocked": out.blocked, "turn": turn,
                                                 "flags": int(state.get("flags", 0)) + int(flagged)}, s.ttl_s)
        if out.event == "flagged" or out.event == "blocked":
            log.info("monitor flag: conversation %s turn %d p=%s action=%s", conv.key, turn, probability, action)
        return Decision(action, out.refuse, out.header, event_override or out.event, probability, s.kind, conv.key,
                        conv.source, turn, (time.perf_counter() - t0) * 1000)

    async def aclose(self) -> None:
        if self.monitor is not None:
            await self.monitor.aclose()


class MonitorMetrics:
    """Prometheus counters of one gateway: ``junto_monitor_decisions_total{monitor,action,event}`` and the
    added latency per checked request ``junto_monitor_latency_seconds{monitor}``."""

    def __init__(self, registry: Any):
        from prometheus_client import Counter, Histogram

        self.decisions = Counter("junto_monitor_decisions", "Sequential monitor decisions",
                                 ["monitor", "action", "event"], registry=registry)
        self.latency = Histogram("junto_monitor_latency_seconds", "Time the monitor added to a request",
                                 ["monitor"], registry=registry,
                                 buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    def observe(self, d: Decision) -> None:
        self.decisions.labels(d.monitor, d.action, d.event).inc()
        self.latency.labels(d.monitor).observe(d.latency_ms / 1000)


def build_guard(settings: MonitorSettings | None, store: ConversationStore,
                client: Callable[[], Awaitable[Any]] | None, default_deployment: str | None,
                deployments: Sequence[str] = ()) -> Guard | None:
    """The guard the settings ask for, or None (``kind: off``)."""
    if settings is None or settings.kind == "off":
        return None
    return Guard(settings, store, client, default_deployment, deployments)
