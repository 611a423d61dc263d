"""The strategy registry and the contract the fronts call: run or stream a strategy by name.

``stream_strategy`` yields the graph's progress events (LangGraph's ``custom`` stream mode) as
plain dicts, each with a ``"type"``; the last one is ``{"type": "result", "result": StrategyResult}``.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import typing
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from junto.errors import ConfigError
from junto.reasoning.base import Strategy
from junto.reasoning.common import StrategyResult
from junto.reasoning.context import RunContext

#: strategy name → module holding its ``STRATEGY``; imported on first use
_MODULES: dict[str, str] = {
    "direct": "junto.reasoning.direct",
    "sc": "junto.reasoning.sc",
    "modelswitch": "junto.reasoning.modelswitch",
    "thoughtmani": "junto.reasoning.thoughtmani",
    "trimr": "junto.reasoning.trimr",
    "ets": "junto.reasoning.ets",
    "rebase": "junto.reasoning.ets.rebase",
    "xolver": "junto.reasoning.xolver",
}
_LOADED: dict[str, Strategy] = {}


def register(name: str, module: str) -> None:
    """Make a strategy module (exposing ``STRATEGY``) selectable by ``name``."""
    _MODULES[name] = module
    _LOADED.pop(name, None)


def strategy_names() -> list[str]:
    return sorted(_MODULES)


def get_strategy(name: str) -> Strategy:
    if name not in _MODULES:
        raise ConfigError(f"unknown strategy {name!r}", hint=f"choose one of: {', '.join(strategy_names())}")
    if name not in _LOADED:
        _LOADED[name] = importlib.import_module(_MODULES[name]).STRATEGY
    return _LOADED[name]


def _describe(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def validate_params(name: str, params: Mapping[str, Any] | None) -> BaseModel:
    """The strategy's validated parameters; a :class:`ConfigError` naming each bad one otherwise."""
    strategy = get_strategy(name)
    if params is not None and not isinstance(params, Mapping):
        raise ConfigError(f"strategy {name!r}: parameters must be a mapping (got {type(params).__name__})")
    try:
        return strategy.params_model.model_validate(dict(params or {}))
    except ValidationError as err:
        problems = []
        fields = []
        for e in err.errors(include_url=False):
            field = ".".join(str(x) for x in e["loc"]) or "(parameters)"
            fields.append(field)
            if e["type"] == "extra_forbidden":
                problems.append(f"{field}: unknown parameter")
            else:
                problems.append(f"{field}: {e['msg']} (got {e.get('input')!r})")
        raise ConfigError(f"strategy {name!r}: bad parameter(s): " + "; ".join(problems),
                          hint=f"{name} takes: {_describe(strategy.params_model)}", param=fields[0]) from None


def _check_context(ctx: RunContext) -> None:
    if not ctx.candidates:
        raise ConfigError("no candidate deployment to run the strategy on",
                          hint="pass RunContext(candidates=[...]) with at least one deployment of the pool")
    for name in ctx.candidates:
        ctx.pool.deployment(name)  # raises ConfigError naming the pool's deployments
    if ctx.max_samples is not None and ctx.max_samples < 1:
        raise ConfigError(f"max_samples must be at least 1 (got {ctx.max_samples})")
    if ctx.max_tokens is not None and ctx.max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1 (got {ctx.max_tokens})")
    if ctx.deadline_s is not None and ctx.deadline_s <= 0:
        raise ConfigError(f"deadline_s must be positive (got {ctx.deadline_s})")


def _prepare(name: str, ctx: RunContext, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any] | None):
    strategy = get_strategy(name)
    p = validate_params(name, params)
    _check_context(ctx)
    msgs = [dict(m) for m in messages]
    if not msgs:
        raise ConfigError("no messages to answer", hint="pass a non-empty list of chat messages")
    return strategy, strategy.make_input(ctx, msgs, p)


def _checkpointed(graph: Any, checkpointer: Any, thread_id: str | None) -> tuple[Any, dict[str, Any]]:
    """The graph with ``checkpointer`` attached (a shallow copy, made once per saver) and the run's config."""
    if not thread_id:
        raise ConfigError("a checkpointed strategy run needs a thread id",
                          hint="pass thread_id= (the facade derives it from the request's trace id)")
    per_saver = _WITH_SAVER.setdefault(checkpointer, {})
    copy = per_saver.get(id(graph))
    if copy is None:
        # a saver opened strict (junto.stores.checkpoints) reads back only the types this graph's state holds
        saver = checkpointer.with_allowlist(state_types(graph))
        copy = per_saver[id(graph)] = graph.copy({"checkpointer": saver})
    return copy, {"configurable": {"thread_id": thread_id}}


def state_types(graph: Any) -> set[tuple[str, str]]:
    """(module, class name) of every model, dataclass and enum a graph's state or node inputs can hold:
    the types a checkpoint of this graph may contain, and the only ones read back from one."""
    found: set[tuple[str, str]] = set()
    seen: set[int] = set()

    def visit(t: Any) -> None:
        if typing.get_origin(t) is not None:
            for arg in typing.get_args(t):
                visit(arg)
            return
        if not isinstance(t, type) or id(t) in seen:
            return
        seen.add(id(t))
        if typing.is_typeddict(t):
            hints: dict[str, Any] = typing.get_type_hints(t)
        elif dataclasses.is_dataclass(t) or issubclass(t, (BaseModel, enum.Enum)):
            found.add((t.__module__, t.__qualname__))
            hints = ({k: f.annotation for k, f in t.model_fields.items()} if issubclass(t, BaseModel)
                     else typing.get_type_hints(t) if dataclasses.is_dataclass(t) else {})
        else:
            return
        for h in hints.values():
            visit(h)

    builder = graph.builder
    for schema in [builder.state_schema, *(getattr(spec, "input_schema", None) for spec in builder.nodes.values())]:
        if schema is not None:
            visit(schema)
    return found


#: saver → {id(compiled graph): the graph's copy with that saver}
_WITH_SAVER: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def _start(graph: Any, config: dict[str, Any], state: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
    """The input to run with: ``None`` resumes the thread's unfinished run, ``state`` starts one."""
    snapshot = await graph.aget_state(config)
    # stopped before its end (killed, cancelled): the step it was in has tasks, finished or not (``next``
    # omits the finished ones, so it is empty when the process died right after a step's last task)
    if snapshot.tasks:
        return None, snapshot
    return state, None


async def stream_strategy(name: str, ctx: RunContext, messages: Sequence[Mapping[str, Any]],
                          params: Mapping[str, Any] | None = None, *, checkpointer: Any = None,
                          thread_id: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """Run strategy ``name``, yielding its progress events, then ``{"type": "result", "result": ...}``.

    With a LangGraph ``checkpointer`` the run is saved under ``thread_id`` as it goes: if that thread
    holds an unfinished run (its process was killed, or the caller went away), this resumes it — a
    ``{"type": "resumed", ...}`` event first — and redoes only the tasks that had not finished. The
    thread is deleted when the run ends, with a result or an error; a cancelled run keeps it.
    """
    strategy, state = _prepare(name, ctx, messages, params)
    graph, config = strategy.graph, None
    inp: dict[str, Any] | None = state
    if checkpointer is not None:
        graph, config = _checkpointed(graph, checkpointer, thread_id)
        inp, snapshot = await _start(graph, config, state)
        if snapshot is not None:
            yield {"type": "resumed", "strategy": name, "thread_id": thread_id,
                   "next": [t.name for t in snapshot.tasks], "step": (snapshot.metadata or {}).get("step")}
    final: dict[str, Any] | None = None
    try:
        async for mode, chunk in graph.astream(inp, config, context=ctx, stream_mode=["custom", "values"]):
            if mode == "custom":
                yield chunk
            else:
                final = chunk
    except Exception:
        if checkpointer is not None:  # the run ended (with an error): a retry starts afresh
            await checkpointer.adelete_thread(thread_id)
        raise
    assert final is not None and "result" in final, f"strategy {name} ended without a result"
    if checkpointer is not None:
        await checkpointer.adelete_thread(thread_id)
    yield {"type": "result", "result": final["result"]}


async def run_strategy(name: str, ctx: RunContext, messages: Sequence[Mapping[str, Any]],
                       params: Mapping[str, Any] | None = None, *, checkpointer: Any = None,
                       thread_id: str | None = None) -> StrategyResult:
    """Run strategy ``name`` to its result (no events); ``checkpointer`` and ``thread_id`` as for
    :func:`stream_strategy`."""
    if checkpointer is None:
        strategy, state = _prepare(name, ctx, messages, params)
        final = await strategy.graph.ainvoke(state, context=ctx)
        return final["result"]
    result = None
    async for ev in stream_strategy(name, ctx, messages, params, checkpointer=checkpointer, thread_id=thread_id):
        if ev.get("type") == "result":
            result = ev["result"]
    assert result is not None
    return result
