"""The strategy registry and the contract the fronts call: run or stream a strategy by name.

``stream_strategy`` yields the graph's progress events (LangGraph's ``custom`` stream mode) as
plain dicts, each with a ``"type"``; the last one is ``{"type": "result", "result": StrategyResult}``.
"""

from __future__ import annotations

import importlib
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


async def stream_strategy(name: str, ctx: RunContext, messages: Sequence[Mapping[str, Any]],
                          params: Mapping[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
    """Run strategy ``name``, yielding its progress events, then ``{"type": "result", "result": ...}``."""
    strategy, state = _prepare(name, ctx, messages, params)
    final: dict[str, Any] | None = None
    async for mode, chunk in strategy.graph.astream(state, context=ctx, stream_mode=["custom", "values"]):
        if mode == "custom":
            yield chunk
        else:
            final = chunk
    assert final is not None and "result" in final, f"strategy {name} ended without a result"
    yield {"type": "result", "result": final["result"]}


async def run_strategy(name: str, ctx: RunContext, messages: Sequence[Mapping[str, Any]],
                       params: Mapping[str, Any] | None = None) -> StrategyResult:
    """Run strategy ``name`` to its result (no events)."""
    strategy, state = _prepare(name, ctx, messages, params)
    final = await strategy.graph.ainvoke(state, context=ctx)
    return final["result"]
