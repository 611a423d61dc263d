"""The ``thoughtmani`` graph: plan (the small planner) → reason (the reasoner, thinking prefilled).

``plan`` asks the planner for the key steps or ``<STOP>``; ``reason`` prefills the reasoner's
assistant turn with ``{open}\\n{plan}\\n{close}`` and streams the answer, or — no plan — lets it
think on the plain-thinking path (:func:`junto.reasoning.trimr.run.think`, monitoring off).
"""

from __future__ import annotations

import time
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from junto.errors import BackendError
from junto.pool.capabilities import require
from junto.pool.config import Thinking
from junto.pool.continuation import Continuation
from junto.pool.types import Usage
from junto.reasoning.common import StrategyResult
from junto.reasoning.context import RunContext
from junto.reasoning.thoughtmani.plan import PLANNER_PROMPT, STOP, parse_plan
from junto.reasoning.thoughtmani.state import ThoughtManiParams, ThoughtManiState
from junto.reasoning.trimr import roles
from junto.reasoning.trimr.graph import thinking_kwargs
from junto.reasoning.trimr.run import answer_after, final_answer, question_of, think, thinking_messages


async def plan(state: ThoughtManiState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    p: ThoughtManiParams = state["params"]
    writer = get_stream_writer()
    reasoner = roles.pick(ctx, "reasoner", p.reasoner)
    planner = roles.pick(ctx, "planner", p.planner, reasoner=reasoner)
    require(ctx.pool.deployment(reasoner), "completions", "prefill", purpose="strategy 'thoughtmani' (its reasoner)")
    require(ctx.pool.deployment(planner), "chat", purpose="strategy 'thoughtmani' (its planner)")
    writer({"type": "roles", "strategy": "thoughtmani", "planner": planner, "reasoner": reasoner})
    writer({"type": "model_call", "strategy": "thoughtmani", "deployment": planner, "n": 1, "first_index": 0})
    kw, _ = thinking_kwargs(p, ctx)
    msgs = [{"role": "system", "content": PLANNER_PROMPT}, {"role": "user", "content": question_of(state["messages"])}]
    # generation ends at <STOP>: the server drops the stop string, so "<STOP>" alone comes back empty (no plan)
    try:
        r = await ctx.client.chat(planner, msgs, max_tokens=p.plan_tokens, stop=[STOP], **kw)
    except BackendError as exc:
        # a planner that fails is a planner that cannot help: the reasoner thinks by itself (as on <STOP>)
        writer({"type": "error", "strategy": "thoughtmani", "deployment": planner, "kind": "backend_error",
                "error": exc.message})
        writer({"type": "plan", "strategy": "thoughtmani", "planner": planner, "plan": None, "stop": True,
                "tokens": 0, "finish_reason": None, "error": exc.message})
        return {"planner": planner, "reasoner": reasoner, "plan": None,
                "plan_usage": {"prompt_tokens": 0, "completion_tokens": 0, "estimated": False, "cost_usd": 0.0,
                               "raw": "", "error": exc.message}}
    text = r.text
    steps = parse_plan(text)
    writer({"type": "plan", "strategy": "thoughtmani", "planner": planner, "plan": steps, "stop": steps is None,
            "tokens": r.usage.completion_tokens, "finish_reason": r.choices[0].finish_reason if r.choices else None})
    return {"planner": planner, "reasoner": reasoner, "plan": steps,
            "plan_usage": {"prompt_tokens": r.usage.prompt_tokens, "completion_tokens": r.usage.completion_tokens,
                           "estimated": r.usage.estimated, "cost_usd": r.cost_usd, "raw": text}}


async def reason(state: ThoughtManiState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    p: ThoughtManiParams = state["params"]
    writer = get_stream_writer()
    reasoner = state["reasoner"]
    dep = ctx.pool.deployment(reasoner)
    tags = dep.thinking or Thinking()
    kw, cap = thinking_kwargs(p, ctx)
    answer_tokens = min(p.answer_tokens, cap) if cap is not None else p.answer_tokens
    pu = state["plan_usage"]
    writer({"type": "model_call", "strategy": "thoughtmani", "deployment": reasoner, "n": 1, "first_index": 0})
    steps = state.get("plan")
    if steps is None:  # the planner gave up: the reasoner thinks by itself, on the plain-thinking path
        out = await think(ctx.client, reasoner, state["messages"], thinking=dep.thinking, budget=p.thinking_budget,
                          answer_tokens=answer_tokens, emit=writer, strategy="thoughtmani", params=kw)
        text, key, usage, ended, thought = out.answer_text, out.answer or None, out.usage, out.ended, out.thinking
        thinking_tokens, answer_tok, segments = out.thinking_tokens, out.answer_tokens, out.segments
    else:
        msgs = thinking_messages(state["messages"], dep.thinking)
        cont = Continuation(ctx.client, reasoner, msgs, prefill=f"{tags.open}\n{steps}\n{tags.close}\n\n", **kw)
        text = await answer_after(cont, writer, "thoughtmani", reasoner, answer_tokens)
        key, _ = final_answer(text, steps, p.answer, None)
        usage, ended, thinking_tokens, thought = cont.usage, "planned", 0, steps
        answer_tok = cont.segments[-1].completion_tokens
        segments = [{"prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens,
                     "cached_tokens": s.cached_tokens, "finish_reason": s.finish_reason} for s in cont.segments]
    planner_dep = ctx.pool.deployment(state["planner"])
    # thinking tokens: the planner's (its plan is the reasoner's thinking) and any the reasoner spent itself
    total = usage + Usage(pu["prompt_tokens"], pu["completion_tokens"], pu["estimated"])
    total.reasoning_tokens = pu["completion_tokens"] + thinking_tokens
    cost = dep.price.cost(usage.prompt_tokens, usage.completion_tokens) + pu["cost_usd"]
    reason_text = ("the reasoner answered after the planner's thoughts" if steps is not None
                   else "the planner gave up (<STOP>): the reasoner thought by itself")
    writer({"type": "decision", "strategy": "thoughtmani", "answer": key or "", "reason": reason_text})
    extra = {"planner": planner_dep.name, "reasoner": reasoner, "plan": steps, "plan_raw": pu["raw"],
             **({"plan_error": pu["error"]} if pu.get("error") else {}),
             "plan_stop": steps is None, "plan_tokens": pu["completion_tokens"], "ended": ended,
             "thinking_tokens": thinking_tokens, "answer_tokens": answer_tok, "segments": segments}
    return {"result": StrategyResult(
        answer=key or "", text=text, deployments=list(dict.fromkeys([reasoner, planner_dep.name])), votes=None,
        samples=1, samples_saved=0, usage=total, cost_usd=cost, latency_s=time.monotonic() - state["started"],
        strategy="thoughtmani", extra=extra, reasoning_content=thought)}


builder = StateGraph(ThoughtManiState, context_schema=RunContext)
builder.add_node("plan", plan)
builder.add_node("reason", reason)
builder.add_edge(START, "plan")
builder.add_edge("plan", "reason")
builder.add_edge("reason", END)

graph = builder.compile(name="thoughtmani")
