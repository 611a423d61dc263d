"""The ``modelswitch`` graph: dispatch → sample (``Send`` per request) → check → [dispatch …] → decide.

Sample numbers are handed out model by model in rank order (model 1's first), so the tie rule
(earliest first sample wins) prefers the better-ranked model's answer. ``check`` drops a model that
yielded no sample (its requests failed) and brings in the next spare candidate in its place; in
either mode it stops the switching once a model is consistent (:func:`~junto.reasoning.voting.switch_vote`).
"""

from __future__ import annotations

import time
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from junto.pool.backends import get_backend
from junto.reasoning.common import (Sample, StrategyResult, answer_keys_for, call_errors, carrier, draw,
                                    failure_reason, no_sample_error, spent, time_left, truncated_count)
from junto.reasoning.context import RunContext
from junto.reasoning.modelswitch.state import ModelSwitchParams, ModelSwitchState, SampleTask
from junto.reasoning.voting import SwitchDecision, Tally, consistency_weight, logprob_weight, switch_vote, tally


def _by_model(state: ModelSwitchState) -> tuple[list[Sample], list[str | None], dict[str, list[int]]]:
    p: ModelSwitchParams = state["params"]
    samples = sorted(state.get("samples", []), key=lambda s: s["index"])
    keys = answer_keys_for(samples, p.answer)  # grouped across models: equal answers share one key
    pos: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        pos.setdefault(s["deployment"], []).append(i)
    return samples, keys, pos


def _model_tally(samples, keys, positions, p: ModelSwitchParams) -> Tally:
    ks = [keys[i] for i in positions]
    ws = [logprob_weight(samples[i]["mean_logprob"]) for i in positions] if p.weight == "logprob" else None
    return tally(ks, ws, [samples[i]["index"] for i in positions])


def _failed(calls, name: str) -> int:
    return sum(c["n"] for c in calls if c["error"] and c["deployment"] == name)


def _decision(state: ModelSwitchState, models: list[str], samples, keys, pos) -> SwitchDecision:
    """The ModelSwitch decision over ``models`` (those with samples, in rank order)."""
    p: ModelSwitchParams = state["params"]
    calls = state.get("calls", [])
    lp = ([[logprob_weight(samples[i]["mean_logprob"]) for i in pos[m]] for m in models]
          if p.weight == "logprob" else None)
    return switch_vote([[keys[i] for i in pos[m]] for m in models],
                       [[samples[i]["index"] for i in pos[m]] for m in models], p.threshold, p.vote, lp,
                       p.prior_weights[:len(models)] if p.prior_weights else None,
                       [_failed(calls, m) for m in models])


async def dispatch(state: ModelSwitchState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    p: ModelSwitchParams = state["params"]
    done = state.get("dispatched", 0)
    models = state["models"]
    if state.get("stop"):
        return {"pending": []}
    left = time_left(ctx, state["started"])
    if done and left is not None and left <= 0:
        return {"pending": [], "stop": "deadline"}
    if done and p.token_budget is not None and spent(state.get("calls", []))[0].completion_tokens >= p.token_budget:
        return {"pending": [], "stop": "token_budget"}
    upto = len(models) if p.mode == "parallel" else min(done + 1, len(models))
    k = state["per_model"]
    nxt = state.get("next_index", 0)
    pending = []
    for j in range(done, upto):
        pending.append((models[j], list(range(nxt, nxt + k))))
        nxt += k
    return {"pending": pending, "dispatched": upto, "next_index": nxt}


async def fan_out(state: ModelSwitchState, runtime: Runtime[RunContext]) -> list[Send] | str:
    if not state.get("pending"):
        return "decide"
    sends = []
    for name, idx in state["pending"]:
        dep = runtime.context.pool.deployment(name)
        # one n=k request where the backend honours n; else one request per sample
        groups = [idx] if get_backend(dep.backend).native_n else [[i] for i in idx]
        sends += [Send("sample", SampleTask(deployment=name, indices=g, messages=state["messages"],
                                            params=state["params"], started=state["started"])) for g in groups]
    return sends


async def sample(task: SampleTask, runtime: Runtime[RunContext]) -> dict[str, Any]:
    samples, call = await draw(runtime.context, get_stream_writer(), task["deployment"], task["messages"],
                               task["indices"], task["params"], task["started"], "modelswitch")
    return {"samples": samples, "calls": [call]}


async def check(state: ModelSwitchState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    p: ModelSwitchParams = state["params"]
    samples, keys, pos = _by_model(state)
    calls = state.get("calls", [])
    new_calls = calls[state.get("seen_calls", 0):]
    writer = get_stream_writer()
    models, spare = list(state["models"]), list(state.get("spare", []))
    dispatched = state["dispatched"]
    for name in models[:dispatched]:
        ps = pos.get(name, [])
        t = _model_tally(samples, keys, ps, p)
        writer({"type": "tally", "strategy": "modelswitch", "deployment": name, "samples": len(ps),
                "valid": t.valid, "truncated": truncated_count([samples[i] for i in ps]),
                "failed": _failed(calls, name), "votes": t.rounded(), "leader": t.winner,
                "share": round(t.share, 4)})
    update: dict[str, Any] = {"seen_calls": len(calls)}
    if failure_reason(new_calls) == "deadline":
        return {**update, "stop": "deadline"}
    # a model that yielded no sample cannot vote: drop it, and bring in the next spare candidate
    fallbacks = list(state.get("fallbacks", []))
    for name in [m for m in models[:dispatched] if m not in pos]:
        errors = [c for c in calls if c["error"] and c["deployment"] == name]
        models.remove(name)
        dispatched -= 1
        repl = None
        if any(c["retryable"] for c in errors):
            tried = {f["deployment"] for f in fallbacks} | set(models) | {name}
            repl = next((c for c in spare if c not in tried and (ctx.health is None or ctx.health.available(c))),
                        None)
        if repl is not None:
            spare.remove(repl)
            models.append(repl)
        error = errors[0]["error"] if errors else "no sample"
        fallbacks.append({"deployment": name, "error": error, "to": repl})
        writer({"type": "fallback", "strategy": "modelswitch", "deployment": name, "error": error, "to": repl})
    if len(fallbacks) != len(state.get("fallbacks", [])):
        update.update(models=models, spare=spare, dispatched=dispatched, fallbacks=fallbacks)
    with_samples = [m for m in models[:dispatched] if m in pos]
    if dispatched < len(models) and with_samples:
        d = _decision(state, with_samples, samples, keys, pos)
        if d.consistent is not None:
            k = state["per_model"]
            name = with_samples[d.consistent]
            writer({"type": "stop", "strategy": "modelswitch", "reason": "consistent", "samples": len(samples),
                    "samples_saved": (len(models) - dispatched) * k, "deployment": name,
                    "share": round(d.shares[d.consistent], 4)})
            return {**update, "stop": "consistent"}
    return update


async def after_check(state: ModelSwitchState) -> str:
    if state.get("stop") or state["dispatched"] >= len(state["models"]):
        return "decide"
    return "dispatch"


async def decide(state: ModelSwitchState) -> dict[str, Any]:
    p: ModelSwitchParams = state["params"]
    samples, keys, pos = _by_model(state)
    calls = state.get("calls", [])
    if not samples:
        raise no_sample_error("modelswitch", calls)
    models = [m for m in state["models"] if m in pos]
    per_model = {m: _model_tally(samples, keys, pos[m], p) for m in models}
    d = _decision(state, models, samples, keys, pos)
    t = d.tally
    if d.stood:
        rule = (f"{models[0]} holds {d.shares[0]:.0%} of its samples (≥ {p.threshold:.0%}): its answer stands")
    elif d.consistent is not None:
        rule = (f"{models[d.consistent]} is consistent ({d.shares[d.consistent]:.0%}): pooled {p.vote} vote over "
                f"{d.used} model(s)")
    else:
        rule = f"no model consistent: pooled {p.vote} vote over {len(models)} model(s)"
    winner = t.winner
    best = carrier(samples, keys, winner)
    usage, cost = spent(calls)
    k = state["per_model"]
    fallbacks = state.get("fallbacks", [])
    failed = sum(c["n"] for c in calls if c["error"])
    reason = state.get("stop")
    if reason is None:
        lost = any(f["to"] is None for f in fallbacks) or any(_failed(calls, m) for m in models)
        reason = (failure_reason(calls) or "backend_error") if lost else "budget"
    saved = (len(state["models"]) - state["dispatched"]) * k if reason in ("consistent", "deadline",
                                                                           "token_budget") else 0
    truncated = truncated_count(samples)
    why = rule if winner is not None else "no sample gave a valid answer" + (
        f" ({truncated} cut by max_tokens)" if truncated and not p.allow_truncated else "")
    get_stream_writer()({"type": "decision", "strategy": "modelswitch", "answer": winner or "", "votes": t.rounded(),
                         "samples": len(samples), "samples_saved": saved, "reason": why})
    extra = {"stopped": reason, "mode": p.mode, "vote": p.vote, "threshold": p.threshold,
             "decided_by": models[d.consistent] if d.consistent is not None else None, "models_voting": d.used,
             "per_model": {m: {"votes": per_model[m].rounded(), "share": round(d.shares[j], 4),
                               "samples": len(pos[m]), "failed": _failed(calls, m),
                               "truncated": truncated_count([samples[i] for i in pos[m]]),
                               "consistency_weight": round(consistency_weight([keys[i] for i in pos[m]]), 4),
                               "prior_weight": p.prior_weights[j] if p.prior_weights else 1.0,
                               "weight": round(d.weights[j], 4)}
                           for j, m in enumerate(models)},
             "budget": state["budget"], "answers": keys, "sample_models": [s["deployment"] for s in samples],
             "candidates": state["models"], "truncated": truncated, "allow_truncated": p.allow_truncated,
             "failed": failed, "errors": call_errors(calls), "fallbacks": fallbacks}
    if len(state["models"]) < 2:
        extra["note"] = "only one candidate deployment: ModelSwitch reduces to self-consistency with a threshold"
    if winner is None:
        extra["no_valid_answer"] = True
    return {"result": StrategyResult(
        answer=winner or "", text=(best or samples[0])["text"], deployments=models, votes=t.rounded(),
        samples=len(samples), samples_saved=saved, usage=usage, cost_usd=cost,
        latency_s=time.monotonic() - state["started"], strategy="modelswitch", extra=extra,
        reasoning_content=(best or samples[0]).get("reasoning"))}


builder = StateGraph(ModelSwitchState, context_schema=RunContext)
builder.add_node("dispatch", dispatch)
builder.add_node("sample", sample)
builder.add_node("check", check)
builder.add_node("decide", decide)
builder.add_edge(START, "dispatch")
builder.add_conditional_edges("dispatch", fan_out, ["sample", "decide"])
builder.add_edge("sample", "check")
builder.add_conditional_edges("check", after_check, ["dispatch", "decide"])
builder.add_edge("decide", END)

graph = builder.compile(name="modelswitch")
