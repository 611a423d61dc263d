"""The ``Junto`` facade: the one object the CLI, the SDK and the HTTP gateway all call.

A request is routed (the pool's router if it has one, else the pool's order), then answered by a
strategy. ``direct`` is served on the hot path without a graph: it streams from the best-ranked
deployment and falls back to the next one on connection errors, timeouts and 5xx, but only before
the first token (after that, a silent switch would splice two answers). Other strategies run as
LangGraph graphs from ``junto.reasoning``'s registry, picked up by name.

Async all the way down; the sync methods (``ask``, ``chat``) run the async ones on a private
event-loop thread (an anyio blocking portal) so that pooled connections survive between calls.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from junto.arms import AUTO
from junto.config import JuntoConfig, load_config
from junto.errors import ConfigError, JuntoError
from junto.health import HealthTracker
from junto.pool.client import PoolClient
from junto.pool.config import Pool
from junto.pool.launcher import Launcher
from junto.pool.types import Usage
from junto.request import Request, build_request
from junto.stores import Stores, build_stores

Messages = Sequence[Mapping[str, Any]]


@dataclass
class Routing:
    """Why these deployments: the ranked candidates, the router that ranked them, and its time.

    ``arms``: the pool's routing arms (``junto.arms``) best first, when a router ranked them; ``arm``
    is the one the request ran (strategy ``auto``), ``None`` otherwise.
    """

    ranked: list[str]
    scores: dict[str, float] = field(default_factory=dict)
    router: str = "pool-order"
    routing_ms: float = 0.0
    arms: list[str] = field(default_factory=list)
    arm: str | None = None


@dataclass
class JuntoResult:
    answer: str
    text: str
    deployment: str
    deployments: list[str]
    strategy: str
    routing: Routing
    usage: Usage
    cost_usd: float
    latency_s: float
    ttft_s: float | None
    trace_id: str
    votes: dict[str, float] | None = None
    samples: int = 1
    finish_reason: str | None = None
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    #: the server's logprobs object (OpenAI shape) of a non-streamed direct answer, when asked for
    logprobs: dict[str, Any] | None = None
    #: the model's thinking (junto.thinking), ``None`` when it did not think; ``text`` and ``answer`` exclude it
    reasoning_content: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer, "text": self.text, "deployment": self.deployment,
            "deployments": self.deployments, "strategy": self.strategy,
            "routing": {"ranked": self.routing.ranked, "scores": self.routing.scores, "router": self.routing.router,
                        "routing_ms": round(self.routing.routing_ms, 4), "arms": self.routing.arms,
                        "arm": self.routing.arm},
            "usage": {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens,
                      "total_tokens": self.usage.total_tokens, "estimated": self.usage.estimated,
                      "reasoning_tokens": self.usage.reasoning_tokens,
                      "reasoning_estimated": self.usage.reasoning_estimated},
            "reasoning_content": self.reasoning_content,
            "cost_usd": self.cost_usd, "latency_s": round(self.latency_s, 4),
            "ttft_s": None if self.ttft_s is None else round(self.ttft_s, 4), "trace_id": self.trace_id,
            "votes": self.votes, "samples": self.samples, "finish_reason": self.finish_reason,
            "fallbacks": self.fallbacks,
            # the strategy's trace (plans, thoughts, decisions, tallies): plain data, made JSON-safe
            "extra": json.loads(json.dumps(self.extra, default=str)),
        }


@dataclass
class RoutedEvent:
    routing: Routing
    trace_id: str


@dataclass
class TokenEvent:
    text: str
    deployment: str
    #: "reasoning" (the model's thinking, junto.thinking) or "content" (the answer)
    kind: str = "content"


@dataclass
class StrategyEvent:
    """A progress event from a strategy graph (model call, sample, tally, decision, ...)."""

    data: dict[str, Any]


@dataclass
class ResultEvent:
    result: JuntoResult


Event = RoutedEvent | TokenEvent | StrategyEvent | ResultEvent


def as_messages(prompt: str | Messages, system: str | None = None) -> list[dict[str, Any]]:
    if isinstance(prompt, str):
        msgs: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    else:
        msgs = [dict(m) for m in prompt]
    if system and not any(m.get("role") == "system" for m in msgs):
        msgs.insert(0, {"role": "system", "content": system})
    if not msgs:
        raise ConfigError("no messages to answer", hint="pass a question or a non-empty list of chat messages")
    return msgs


def last_user_text(messages: Messages) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):  # OpenAI content parts
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


class Junto:
    """Route, reason and answer over one pool. Use as a (async) context manager to close cleanly."""

    def __init__(self, pool: Pool, *, config: JuntoConfig | None = None, router: Any = None,
                 state_root: Path | None = None, auto_start: bool = True, keep: bool = True,
                 stores: Stores | None = None):
        """``stores``: where shared state lives (:mod:`junto.stores`); default: built from ``config``
        (``store:``, ``checkpoints:``) and closed with this object. Stores passed in are the caller's to close."""
        self.pool = pool
        self.config = config or JuntoConfig(pool=pool)
        self.launcher = Launcher(pool, state_root)
        self._state_root = state_root
        self.auto_start = auto_start
        self.keep = keep
        self._own_stores = stores is None
        self.stores = build_stores(self.config) if stores is None else stores
        self.health = HealthTracker(self.config.gateway.cooldown.failures, self.config.gateway.cooldown.seconds)
        self._health_sync: Any = None
        if self.stores.shared:  # other replicas see this one's cool-downs and it sees theirs
            from junto.stores.health_sync import HealthSync

            self._health_sync = HealthSync(self.health, self.stores.cooldowns, [d.name for d in pool.deployments],
                                           interval_s=self.stores.health_sync_s)
        self._router = router
        self._router_loaded = router is not None
        self._templates: Any = None
        self._experience: Any = None
        self._guard: Any = None
        self._client: PoolClient | None = None
        self._started: list[str] = []
        self._up = False
        self._portal_cm = None
        self._portal = None
        for arm in self.pool.arms:  # an arm's strategy and parameters are checked when the pool loads
            try:
                build_request(arm.strategy, arm.params, self.config.strategies.get(arm.strategy))
            except ConfigError as exc:
                raise ConfigError(f"{pool.source or pool.name}: arm {arm.name!r}: {exc.message}", hint=exc.hint,
                                  param=exc.param) from None
        for name, defaults in self.config.strategies.items():  # a bad default fails now, not on every request
            try:
                build_request(name, None, defaults)
            except ConfigError as exc:
                where = self.config.source or "the junto config"
                raise ConfigError(f"{where}: strategies.{name}: {exc.message}", hint=exc.hint, param=exc.param) from None
        if self.config.checkpoints is not None and self.config.checkpoints.strategies:
            from junto.reasoning import strategy_names

            unknown = sorted(set(self.config.checkpoints.strategies) - set(strategy_names()))
            if unknown:
                where = self.config.source or "the junto config"
                raise ConfigError(f"{where}: checkpoints.strategies: unknown strategy {', '.join(map(repr, unknown))}",
                                  hint=f"choose among: {', '.join(strategy_names())}", param="checkpoints.strategies")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, path: str | Path | None = None, **kwargs: Any) -> Junto:
        """From a junto config file, a pool file, or a built-in pool name (default ``embedded``)."""
        cfg = load_config(path)
        return cls(cfg.load_pool(), config=cfg, **kwargs)

    @property
    def router(self) -> Any:
        """The router named by the config (``router:``) or the pool file, loaded on first use; or None."""
        if not self._router_loaded:
            self._router_loaded = True
            path = self.config.router_path(self.pool)
            if path is not None:
                try:
                    from junto.routers import load_pool_router
                except ImportError:
                    raise ConfigError("this pool names a router but junto's routers are not installed",
                                      hint="pip install 'junto[routers]'") from None
                # the pool's own check: the router must know at least one of the pool's deployments
                self._router = load_pool_router(self.pool.model_copy(update={"router": str(path)}))
        return self._router

    @property
    def templates(self) -> Any:
        """The thought-template store named by ``memory.templates``, loaded on first use; or None."""
        if self._templates is None and self.config.memory.templates:
            from junto.memory.templates import ThoughtTemplateStore

            path = self.config.relative(self.config.memory.templates)
            if not path.is_dir():
                raise ConfigError(f"thought-template store not found: {path}",
                                  hint="build one (see docs/routers.md) or remove memory.templates from the config")
            self._templates = ThoughtTemplateStore(path)
        return self._templates

    @property
    def experience(self) -> Any:
        """The experience memory ``memory.experience`` names (``auto``: ``<state dir>/memory/experience.db``;
        created on first use), opened lazily; None when it is ``off``."""
        where = self.config.memory.experience
        if self._experience is None and where and where != "off":
            from junto.memory.experience import ExperienceStore
            from junto.paths import state_dir

            path = ((self._state_root or state_dir()) / "memory" / "experience.db" if where == "auto"
                    else self.config.relative(where))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._experience = ExperienceStore(path, max_items=self.config.memory.experience_max_items)
        return self._experience

    def close_memory(self) -> None:
        """Close the experience memory and the template store (idempotent; reopened lazily on next use)."""
        experience, templates = self._experience, self._templates
        self._experience = self._templates = None
        for store in (experience, templates):
            if store is not None:
                store.close()

    @property
    def guard(self) -> Any:
        """The sequential monitor the config's ``monitor:`` turns on (:mod:`junto.monitors`), or None."""
        if self._guard is None and self.config.monitor.kind != "off":
            from junto.monitors import build_guard

            names = [d.name for d in self.pool.deployments]
            self._guard = build_guard(self.config.monitor, self.stores.conversations, self._client_ready,
                                      self.pool.default or (names[0] if names else None), names)
        return self._guard

    def _with_templates(self, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """Prepend the thought templates of similar past queries to the last user message."""
        store = self.templates
        if store is None:
            return messages, []
        mem = self.config.memory
        query = last_user_text(messages)
        hits = store.search(query, mem.template_k, mem.min_similarity)
        if not hits:
            return messages, []
        from junto.memory.templates import prompt_with_templates

        out = list(messages)
        for i in range(len(out) - 1, -1, -1):
            if out[i].get("role") == "user":
                out[i] = {**out[i], "content": prompt_with_templates(query, hits)}
                break
        return out, [t.id for t, _ in hits]

    # -- lifecycle ---------------------------------------------------------------------------
    def up(self, progress: Any = None) -> dict[str, str]:
        """Start the pool's local servers (sync; idempotent). Returns the endpoints."""
        endpoints, started = self.launcher.up(progress=progress)
        self._started += [s for s in started if s not in self._started]
        self._up = True
        if self._client is not None:
            self._client.endpoints.update(endpoints)
        return endpoints

    async def aup(self, progress: Any = None) -> dict[str, str]:
        endpoints = await asyncio.to_thread(self.up, progress)
        await asyncio.to_thread(self.warm)
        return endpoints

    def warm(self) -> None:
        """Load the router's embedder and the template store now (blocking work, done once, off the hot path)."""
        if self.router is not None and hasattr(self.router, "warm"):
            self.router.warm()
        _ = self.templates

    async def _client_ready(self) -> PoolClient:
        if not self._up:
            if self.auto_start:
                await self.aup()
            else:
                self._up = True
        if self._client is None:
            self._client = PoolClient(self.pool, self.launcher.endpoints())
            await self.astart_stores()
        return self._client

    async def astart_stores(self) -> None:
        """Connect the stores and start sharing cool-downs (inside the running loop); idempotent."""
        await self.stores.start()
        if self._health_sync is not None:
            self._health_sync.start()

    def stop_started(self) -> list[str]:
        """Stop the servers this object started (sync); servers that were already running stay."""
        stopped = self.launcher.down(list(self._started)) if self._started else []
        self._started.clear()
        self._up = False
        return stopped

    async def aclose(self) -> None:
        if self._health_sync is not None:
            await self._health_sync.stop()
        if self._own_stores:
            await self.stores.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._guard = None  # its prompted monitor held the client closed above
        self.close_memory()
        if not self.keep and self._started:
            await asyncio.to_thread(self.stop_started)

    def close(self) -> None:
        if self._portal is not None:
            self._portal.call(self.aclose)
            self._portal_cm.__exit__(None, None, None)
            self._portal = self._portal_cm = None
        elif self._client is not None or (not self.keep and self._started):
            asyncio.run(self.aclose())
        self.close_memory()

    async def __aenter__(self) -> Junto:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> Junto:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self, strategy: str | None = None, options: Mapping[str, Any] | None = None) -> Request:
        """Validate a request's options for ``strategy`` (the config's defaults under them): the one contract.

        Raises a :class:`ConfigError` naming the field; the fronts call it before any model is.
        """
        name = strategy or self.config.strategy
        return build_request(name, options, self.config.strategies.get(name))

    # -- routing -----------------------------------------------------------------------------
    def _blocking(self, thing: Any) -> bool:
        """Whether ``thing`` (a router or template store) embeds queries with torch: then it runs in a thread."""
        return thing is not None and bool(getattr(thing, "blocking", True))

    async def aroute(self, messages: str | Messages, deployment: str | None = None) -> Routing:
        """:meth:`route` without blocking the event loop: a torch embedder runs in a worker thread.

        The static embedder (~0.1 ms a query) routes inline: a thread hop would cost more than it saves.
        """
        if deployment is None and (not self._router_loaded or self._blocking(self.router)):
            return await asyncio.to_thread(self.route, messages, deployment)
        return self.route(messages, deployment)

    def route(self, messages: str | Messages, deployment: str | None = None) -> Routing:
        """Rank the pool's deployments for this request (best first)."""
        names = [d.name for d in self.pool.deployments]
        if deployment is not None:
            self.pool.deployment(deployment)  # raises a ConfigError naming the choices
            return Routing([deployment], router="explicit")
        router = self.router
        if router is None:
            default = self.pool.default_deployment.name
            return Routing([default] + [n for n in names if n != default])
        query = last_user_text(as_messages(messages))
        arms = {a.name: a for a in self.pool.arm_list()}
        t0 = time.perf_counter()
        decision = router.route(query, candidates=list(arms))
        ms = (time.perf_counter() - t0) * 1000
        ranked_arms = [m for m, _ in decision.ranked]
        ranked: list[str] = []
        for m in ranked_arms:  # deployments in the order of their best arm
            if arms[m].deployment not in ranked:
                ranked.append(arms[m].deployment)
        ranked += [n for n in names if n not in ranked]
        return Routing(ranked, {m: float(s) for m, s in decision.ranked}, getattr(router, "method", "router"), ms,
                       arms=ranked_arms)

    def _run_arm(self, routing: Routing, messages: list[dict[str, Any]], params: Mapping[str, Any]
                 ) -> tuple[Request, list[dict[str, Any]]]:
        """Strategy ``auto``: the top-ranked arm's strategy, deployment first, parameters under the request's."""
        arm = self.pool.arm(routing.arms[0]) if routing.arms else None
        if arm is None:
            return self.prepare("direct", params), messages
        routing.arm = arm.name
        routing.ranked = [arm.deployment] + [n for n in routing.ranked if n != arm.deployment]
        request = build_request(arm.strategy, {**arm.params, **params}, self.config.strategies.get(arm.strategy))
        return request, arm.messages(messages)

    # -- answering ---------------------------------------------------------------------------
    async def astream(self, prompt: str | Messages, *, strategy: str | None = None, deployment: str | None = None,
                      system: str | None = None, trace_id: str | None = None, stream_tokens: bool = True,
                      conversation: str | None = None, monitor: bool = True, **params: Any) -> AsyncIterator[Event]:
        """Route and answer, yielding events: RoutedEvent, then TokenEvent/StrategyEvent, then ResultEvent.

        ``stream_tokens=False`` answers ``direct`` requests with one non-streamed call (exact usage
        from servers that report none in streams, e.g. llama.cpp) and yields no TokenEvent.
        ``conversation``: the id that ties requests together for the sequential monitor (config ``monitor:``;
        default: the resent history); a blocked conversation gets a ResultEvent with ``finish_reason
        "content_filter"`` and no model call. ``monitor=False`` skips the monitor (the gateway checks itself).
        """
        messages = as_messages(prompt, system)
        request = self.prepare(strategy, params)  # "auto": sampling and budgets only, until an arm is chosen
        trace_id = trace_id or uuid.uuid4().hex
        t0 = time.perf_counter()
        decision = None
        if monitor and self.guard is not None:  # before anything is routed or called
            decision = await self.guard.check(messages, model=deployment, sdk=conversation)
            if decision is not None and decision.refuse:
                yield ResultEvent(_refusal(decision, request.strategy, trace_id, t0))
                return
        routing = await self.aroute(messages, deployment)  # on the user's words, before any template is added
        if request.strategy == AUTO:
            request, messages = self._run_arm(routing, messages, params)
        strategy = request.strategy
        if self.config.memory.templates and (self._templates is None or self._blocking(self._templates)):
            messages, template_ids = await asyncio.to_thread(self._with_templates, messages)
        else:
            messages, template_ids = self._with_templates(messages)
        client = await self._client_ready()
        yield RoutedEvent(routing, trace_id)
        inner = (self._direct(client, messages, routing, trace_id, t0, request, stream_tokens) if strategy == "direct"
                 else self._graph(client, messages, routing, trace_id, t0, request))
        async for ev in inner:
            if isinstance(ev, ResultEvent) and template_ids:
                ev.result.extra["templates"] = template_ids
            if isinstance(ev, ResultEvent) and decision is not None:
                ev.result.extra["monitor"] = _monitor_extra(decision)
            yield ev

    async def achat(self, prompt: str | Messages, **kwargs: Any) -> JuntoResult:
        """Route and answer; the whole result at once."""
        result = None
        async for ev in self.astream(prompt, stream_tokens=False, **kwargs):
            if isinstance(ev, ResultEvent):
                result = ev.result
        assert result is not None
        return result

    def _sync(self, fn, *args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise JuntoError("Junto.chat()/ask() was called inside a running event loop",
                             hint="use `await junto.achat(...)` (or `astream`) from async code")
        if self._portal is None:
            from anyio.from_thread import start_blocking_portal

            self._portal_cm = start_blocking_portal()
            self._portal = self._portal_cm.__enter__()
        return self._portal.call(lambda: fn(*args, **kwargs))

    def chat(self, prompt: str | Messages, **kwargs: Any) -> JuntoResult:
        """Synchronous :meth:`achat`."""
        return self._sync(self.achat, prompt, **kwargs)

    def ask(self, question: str, **kwargs: Any) -> str:
        """The answer text only."""
        return self.chat(question, **kwargs).answer

    # -- strategies --------------------------------------------------------------------------
    async def _direct(self, client: PoolClient, messages: list[dict[str, Any]], routing: Routing, trace_id: str,
                      t0: float, request: Request, stream_tokens: bool = True) -> AsyncIterator[Event]:
        """The hot path: ``junto.reasoning.direct``'s one implementation, without a graph around it."""
        from junto.reasoning.direct.run import DirectAnswer, DirectToken, answer_direct

        async for ev in answer_direct(client, routing.ranked, messages, request.sampling.given(), health=self.health,
                                      stream=stream_tokens, deadline_s=request.budgets.deadline_s, started=t0):
            if isinstance(ev, DirectToken):
                yield TokenEvent(ev.text, ev.deployment, ev.kind)
            elif isinstance(ev, DirectAnswer):
                yield ResultEvent(JuntoResult(
                    answer=ev.text, text=ev.text, deployment=ev.deployment, deployments=[ev.deployment],
                    strategy="direct", routing=routing, usage=ev.usage, cost_usd=ev.cost_usd, latency_s=ev.latency_s,
                    ttft_s=ev.ttft_s, trace_id=trace_id, finish_reason=ev.finish_reason, fallbacks=ev.fallbacks,
                    logprobs=ev.logprobs, reasoning_content=ev.reasoning,
                    extra={"thinking_truncated": True} if ev.thinking_truncated else {}))

    async def _graph(self, client: PoolClient, messages: list[dict[str, Any]], routing: Routing, trace_id: str,
                     t0: float, request: Request) -> AsyncIterator[Event]:
        from junto.reasoning import RunContext, stream_strategy
        from junto.reasoning.registry import get_strategy

        memory = None
        if get_strategy(request.strategy).uses_memory:  # only strategies that learn open it: it loads the embedder
            memory = self._experience or await asyncio.to_thread(lambda: self.experience)
        ctx = RunContext(client=client, pool=self.pool, candidates=self.health.order(routing.ranked),
                         max_samples=request.budgets.max_samples, max_tokens=request.sampling.max_tokens,
                         deadline_s=request.budgets.deadline_s, router=self.router, memory=memory,
                         health=self.health, passthrough=request.passthrough)
        checkpoint: dict[str, Any] = {}
        cp = self.stores.checkpoints
        if cp is not None and cp.wants(request.strategy):
            # keyed by the trace id: the same trace id asked again resumes an unfinished run
            what = {"params": request.params, "sampling": request.sampling.given(),
                    "budgets": request.budgets.model_dump(), "passthrough": request.passthrough}
            checkpoint = {"checkpointer": await cp.saver(),
                          "thread_id": cp.thread_id(trace_id, request.strategy, messages, what)}
        async for ev in stream_strategy(request.strategy, ctx, messages, request.params, **checkpoint):
            if ev.get("type") == "token":
                yield TokenEvent(ev.get("text", ""), ev.get("deployment", ""), ev.get("kind", "content"))
            elif ev.get("type") == "result":
                r = ev["result"]
                yield ResultEvent(JuntoResult(
                    answer=r.answer, text=r.text, deployment=(r.deployments or [""])[0], deployments=r.deployments,
                    strategy=r.strategy, routing=routing, usage=r.usage, cost_usd=r.cost_usd,
                    latency_s=time.perf_counter() - t0, ttft_s=None, trace_id=trace_id, votes=r.votes,
                    samples=r.samples, extra={**r.extra, "samples_saved": r.samples_saved},
                    reasoning_content=getattr(r, "reasoning_content", None)))
                return
            else:
                yield StrategyEvent(ev)


def _monitor_extra(d: Any) -> dict[str, Any]:
    return {"monitor": d.monitor, "action": d.action, "event": d.event, "probability": d.probability,
            "turn": d.turn, "latency_ms": round(d.latency_ms, 3)}


def _refusal(d: Any, strategy: str, trace_id: str, t0: float) -> JuntoResult:
    """The result of a request the sequential monitor refused (no model was called)."""
    from junto.monitors.policy import FINISH_REASON, REFUSAL

    return JuntoResult(answer=REFUSAL, text=REFUSAL, deployment="", deployments=[], strategy=strategy,
                       routing=Routing(ranked=[], router="monitor"), usage=Usage(), cost_usd=0.0,
                       latency_s=time.perf_counter() - t0, ttft_s=None, trace_id=trace_id,
                       finish_reason=FINISH_REASON, extra={"monitor": _monitor_extra(d)})
