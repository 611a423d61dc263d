"""The ``trimr`` graph: one node that thinks (watched, or plain when ``monitor=false``), then the result.

The work is :func:`junto.reasoning.trimr.run.think`; this node picks the deployments, checks their
capabilities, turns the outcome into a :class:`StrategyResult` whose ``extra`` is the trace of every
decision (thoughts, who judged them, the cut, the tokens of each segment).
"""

from __future__ import annotations

import time
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from junto.pool.capabilities import require
from junto.reasoning.common import StrategyResult, sampling_kwargs
from junto.reasoning.context import RunContext
from junto.reasoning.trimr import roles
from junto.reasoning.trimr.run import MonitorSettings, think
from junto.reasoning.trimr.state import TrimRParams, TrimRState
from junto.reasoning.trimr.verifier import verifier_for


def thinking_kwargs(p, ctx: RunContext) -> tuple[dict[str, Any], int | None]:
    """Sampling fields for the reasoner's segments, and the cap ``max_tokens`` puts on the answer."""
    kw = sampling_kwargs(p, ctx)
    cap = kw.pop("max_tokens", None)
    kw.pop("stop", None)
    if p.seed is not None:
        kw["seed"] = p.seed
    return kw, cap


async def run(state: TrimRState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    p: TrimRParams = state["params"]
    writer = get_stream_writer()
    reasoner = roles.pick(ctx, "reasoner", p.reasoner)
    dep = ctx.pool.deployment(reasoner)
    require(dep, "completions", "prefill", purpose="strategy 'trimr' (its reasoner)")
    verifier = None
    verifier_name = None
    if p.monitor and p.use_verifier:
        tagged = any("verifier" in d.tags for d in ctx.pool.deployments)
        if p.verifier is not None or tagged:
            verifier_name = roles.pick(ctx, "verifier", p.verifier, reasoner=reasoner)
            require(ctx.pool.deployment(verifier_name), "logprobs", "top_logprobs",
                    purpose="strategy 'trimr' (its verifier, P(Yes) vs P(No))")
            verifier = verifier_for(ctx.client, verifier_name)
    kw, cap = thinking_kwargs(p, ctx)
    answer_tokens = min(p.answer_tokens, cap) if cap is not None else p.answer_tokens
    writer({"type": "roles", "strategy": "trimr", "reasoner": reasoner, "verifier": verifier_name,
            "monitor": p.monitor, "thinking_budget": p.thinking_budget})
    writer({"type": "model_call", "strategy": "trimr", "deployment": reasoner, "n": 1, "first_index": 0})
    settings = (MonitorSettings(consecutive=p.consecutive, under_fraction=p.under_fraction,
                                max_thoughts=p.max_thoughts, repeat_window=p.repeat_window, kind=p.answer)
                if p.monitor else None)
    out = await think(ctx.client, reasoner, state["messages"], thinking=dep.thinking, budget=p.thinking_budget,
                      answer_tokens=answer_tokens, emit=writer, strategy="trimr", monitor=settings,
                      verifier=verifier, params=kw)
    why = {"overthinking": f"answers converged ({p.consecutive} in a row): thinking cut",
           "underthinking": "no convergence within the budget share: thinking closed",
           "repetition": "a repetition loop: thinking closed",
           "closed": "the model closed its thinking", "budget": "the thinking budget ran out"}[out.ended]
    writer({"type": "decision", "strategy": "trimr", "answer": out.answer, "reason": why,
            "thinking_tokens": out.thinking_tokens, "answer_tokens": out.answer_tokens})
    cost = dep.price.cost(out.usage.prompt_tokens, out.usage.completion_tokens)
    extra = {"reasoner": reasoner, "verifier": verifier_name, "monitor": p.monitor, "ended": out.ended,
             "answer_from": out.answer_from,
             "thinking": out.thinking, "thinking_tokens": out.thinking_tokens, "answer_tokens": out.answer_tokens,
             "thoughts": out.thought_count, "trace": out.thoughts, "verifier_calls": out.verifier_calls,
             "verifier_errors": out.verifier_errors, "segments": out.segments, "thinking_budget": p.thinking_budget}
    return {"result": StrategyResult(
        answer=out.answer, text=out.answer_text, deployments=[reasoner] + ([verifier_name] if verifier_name else []),
        votes=None, samples=1, samples_saved=0, usage=out.usage, cost_usd=cost,
        latency_s=time.monotonic() - state["started"], strategy="trimr", extra=extra,
        reasoning_content=out.thinking)}


builder = StateGraph(TrimRState, context_schema=RunContext)
builder.add_node("run", run)
builder.add_edge(START, "run")
builder.add_edge("run", END)

graph = builder.compile(name="trimr")
