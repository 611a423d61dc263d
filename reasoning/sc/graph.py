"""The ``sc`` graph: plan a round → sample (one ``Send`` per request) → count → plan … → decide.

Rounds make early stopping pay off where the server serializes requests (llama.cpp): each round
draws ``batch`` samples, the tally is updated, and the stopping rule decides whether another round
can still change the answer. Where the backend honours ``n`` (vLLM) a round is one ``n = batch``
request; otherwise the round fans out as ``batch`` concurrent requests, one LangGraph ``Send`` each.
"""

from __future__ import annotations

import time
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from junto.pool.backends import get_backend
from junto.reasoning.common import (StrategyResult, answer_keys_for, call_errors, carrier, draw, failure_reason,
                                    no_sample_error, spent, time_left, truncated_count)
from junto.reasoning.context import RunContext
from junto.reasoning.sc.state import SampleTask, SCParams, SCState
from junto.reasoning.voting import logprob_weight, stop_reason, tally

#: stop reasons that end sampling early on purpose (the samples not drawn are "saved")
_EARLY = ("unbeatable", "beta", "token_budget", "deadline")


def _tally(state: SCState):
    p: SCParams = state["params"]
    samples = sorted(state.get("samples", []), key=lambda s: s["index"])
    keys = answer_keys_for(samples, p.answer)
    weights = [logprob_weight(s["mean_logprob"]) for s in samples] if p.weight == "logprob" else None
    return samples, keys, tally(keys, weights, [s["index"] for s in samples])


def _next_candidate(ctx: RunContext, tried: list[str]) -> str | None:
    """The best-ranked candidate not tried yet that may be called now (a pure look at health)."""
    for name in ctx.candidates:
        if name not in tried and (ctx.health is None or ctx.health.available(name)):
            return name
    return None


async def plan(state: SCState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    p: SCParams = state["params"]
    budget = state["budget"]
    drawn = state.get("drawn", 0)  # sample numbers handed out so far (failed requests included)
    samples, _, t = _tally(state)
    got = len(samples)
    calls = state.get("calls", [])
    new_calls = calls[state.get("seen_calls", 0):]
    update: dict[str, Any] = {"seen_calls": len(calls)}
    name = state["deployment"]
    reason = None
    failed = failure_reason(new_calls)
    if failed == "deadline":
        reason = "deadline"
    elif failed is not None:
        errors = [c for c in new_calls if c["error"]]
        fallbacks = list(state.get("fallbacks", []))
        nxt = None
        if got == 0 and any(c["retryable"] for c in errors):
            # this deployment yielded nothing: sample the next-ranked candidate instead
            nxt = _next_candidate(ctx, [f["deployment"] for f in fallbacks] + [name])
        if nxt is None:
            reason = failed  # go on with the samples obtained
        else:
            fallbacks.append({"deployment": name, "error": errors[0]["error"], "to": nxt})
            get_stream_writer()({"type": "fallback", "strategy": "sc", "deployment": name,
                                 "error": errors[0]["error"], "to": nxt})
            name = nxt
            update.update(deployment=nxt, fallbacks=fallbacks)
    if reason is None:
        if got >= budget:
            reason = "budget"
        elif (left := time_left(ctx, state["started"])) is not None and left <= 0:
            reason = "deadline"
        elif p.token_budget is not None and spent(calls)[0].completion_tokens >= p.token_budget:
            reason = "token_budget"
        elif got:
            reason = stop_reason(t, got, budget, p.early_stop, p.confidence, p.min_samples)
    if reason is not None:
        if reason != "budget":
            get_stream_writer()({"type": "stop", "strategy": "sc", "reason": reason, "samples": got,
                                 "samples_saved": budget - got if reason in _EARLY else 0})
        return {**update, "stop": reason, "pending": []}
    dep = ctx.pool.deployment(name)
    native_n = get_backend(dep.backend).native_n
    remaining = budget - got
    # rounds only pay where something can stop early: a stopping rule, a token budget or a deadline
    all_at_once = p.early_stop == "none" and p.token_budget is None and ctx.deadline_s is None
    size = p.batch or (remaining if all_at_once else dep.max_concurrency)
    size = min(size, remaining)
    idx = list(range(drawn, drawn + size))
    # one n=size request where the backend honours n; else one request per sample, fanned out
    pending = [idx] if native_n else [[i] for i in idx]
    return {**update, "drawn": drawn + size, "rounds": state.get("rounds", 0) + 1, "pending": pending, "stop": None}


async def fan_out(state: SCState) -> list[Send] | str:
    if state.get("stop"):
        return "decide"
    return [Send("sample", SampleTask(deployment=state["deployment"], indices=ix, messages=state["messages"],
                                      params=state["params"], started=state["started"]))
            for ix in state["pending"]]


async def sample(task: SampleTask, runtime: Runtime[RunContext]) -> dict[str, Any]:
    samples, call = await draw(runtime.context, get_stream_writer(), task["deployment"], task["messages"],
                               task["indices"], task["params"], task["started"], "sc")
    return {"samples": samples, "calls": [call]}


async def count(state: SCState) -> dict[str, Any]:
    samples, _, t = _tally(state)
    failed = sum(c["n"] for c in state.get("calls", []) if c["error"])
    get_stream_writer()({"type": "tally", "strategy": "sc", "samples": len(samples), "valid": t.valid,
                         "truncated": truncated_count(samples), "failed": failed,
                         "votes": t.rounded(), "leader": t.winner, "share": round(t.share, 4)})
    return {}


async def decide(state: SCState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    p: SCParams = state["params"]
    samples, keys, t = _tally(state)
    calls = state.get("calls", [])
    if not samples:
        raise no_sample_error("self-consistency", calls)
    winner = t.winner
    best = carrier(samples, keys, winner)
    usage, cost = spent(calls)
    drawn = len(samples)
    reason = state.get("stop") or "budget"
    saved = max(0, state["budget"] - drawn) if reason in _EARLY else 0
    truncated = truncated_count(samples)
    no_answer = winner is None
    if no_answer:
        why = "no sample gave a valid answer"
        if truncated and not p.allow_truncated:
            why += f" ({truncated} cut by max_tokens)"
    else:
        why = f"majority {t.votes[winner]:g} of {t.valid} valid votes (stopped: {reason})"
    get_stream_writer()({"type": "decision", "strategy": "sc", "answer": winner or "", "votes": t.rounded(),
                         "samples": drawn, "samples_saved": saved, "reason": why})
    extra = {"stopped": reason, "rounds": state.get("rounds", 0), "valid": t.valid, "invalid": t.invalid,
             "truncated": truncated, "allow_truncated": p.allow_truncated,
             "failed": sum(c["n"] for c in calls if c["error"]), "errors": call_errors(calls),
             "fallbacks": state.get("fallbacks", []),
             "share": round(t.share, 4), "budget": state["budget"], "answers": keys,
             "sample_models": [s["deployment"] for s in samples],
             "weighting": p.weight, "logprobs_seen": any(s["mean_logprob"] is not None for s in samples)}
    if no_answer:
        extra["no_valid_answer"] = True
    return {"result": StrategyResult(
        answer=winner or "", text=(best or samples[0])["text"],
        deployments=list(dict.fromkeys(s["deployment"] for s in samples)),
        votes=t.rounded(), samples=drawn, samples_saved=saved, usage=usage, cost_usd=cost,
        latency_s=time.monotonic() - state["started"], strategy="sc", extra=extra,
        reasoning_content=(best or samples[0]).get("reasoning"))}


builder = StateGraph(SCState, context_schema=RunContext)
builder.add_node("plan", plan)
builder.add_node("sample", sample)
builder.add_node("count", count)
builder.add_node("decide", decide)
builder.add_edge(START, "plan")
builder.add_conditional_edges("plan", fan_out, ["sample", "decide"])
builder.add_edge("sample", "count")
builder.add_edge("count", "plan")
builder.add_edge("decide", END)

graph = builder.compile(name="sc")
