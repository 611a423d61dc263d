"""The ``modelswitch`` graph: dispatch → sample (``Send`` per request) → check → [dispatch …] → decide.

Model ``j`` (0-based, in router order) gets sample numbers ``j*k … j*k+k-1``, so the tie rule
(earliest first sample wins) prefers the better-ranked model's answer.
"""

from __future__ import annotations

import time
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from junto.errors import BackendError
from junto.pool.backends import get_backend
from junto.reasoning.common import Sample, StrategyResult, answer_keys_for, carrier, draw, spent, time_left
from junto.reasoning.context import RunContext
from junto.reasoning.modelswitch.state import ModelSwitchParams, ModelSwitchState, SampleTask
from junto.reasoning.voting import Tally, consistency_weight, logprob_weight, switch_vote, tally


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
    upto = len(models) if p.mode == "parallel" else done + 1
    k = state["per_model"]
    pending = [(models[j], list(range(j * k, j * k + k))) for j in range(done, upto)]
    return {"pending": pending, "dispatched": upto}


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


async def check(state: ModelSwitchState) -> dict[str, Any]:
    p: ModelSwitchParams = state["params"]
    samples, keys, pos = _by_model(state)
    writer = get_stream_writer()
    for name in state["models"][:state["dispatched"]]:
        t = _model_tally(samples, keys, pos.get(name, []), p)
        writer({"type": "tally", "strategy": "modelswitch", "deployment": name, "samples": len(pos.get(name, [])),
                "valid": t.valid, "votes": t.rounded(), "leader": t.winner, "share": round(t.share, 4)})
    if any(c["error"] for c in state.get("calls", [])):
        return {"stop": "deadline"}
    first = _model_tally(samples, keys, pos.get(state["models"][0], []), p)
    if state["dispatched"] < len(state["models"]) and first.valid and first.share_of_samples >= p.threshold:
        saved = (len(state["models"]) - state["dispatched"]) * state["per_model"]
        writer({"type": "stop", "strategy": "modelswitch", "reason": "consistent", "samples": len(samples),
                "samples_saved": saved, "deployment": state["models"][0], "share": round(first.share_of_samples, 4)})
        return {"stop": "consistent"}
    return {}


async def after_check(state: ModelSwitchState) -> str:
    if state.get("stop") or state["dispatched"] >= len(state["models"]):
        return "decide"
    return "dispatch"


async def decide(state: ModelSwitchState) -> dict[str, Any]:
    p: ModelSwitchParams = state["params"]
    samples, keys, pos = _by_model(state)
    if not samples:
        raise BackendError("modelswitch drew no sample before the deadline",
                           hint="raise deadline_s, or lower max_tokens so one sample fits in it")
    models = [m for m in state["models"] if m in pos]
    per_model = {m: _model_tally(samples, keys, pos[m], p) for m in models}
    first = per_model[models[0]]
    weights_by_model = {m: consistency_weight([keys[i] for i in pos[m]]) for m in models}
    lp = ([[logprob_weight(samples[i]["mean_logprob"]) for i in pos[m]] for m in models]
          if p.weight == "logprob" else None)
    t, stood = switch_vote([[keys[i] for i in pos[m]] for m in models],
                           [[samples[i]["index"] for i in pos[m]] for m in models], p.threshold, p.vote, lp)
    if stood:
        rule = f"{models[0]} holds {first.share_of_samples:.0%} of its samples (≥ {p.threshold:.0%}): its answer stands"
    else:
        rule = f"pooled {p.vote} vote over {len(models)} model(s)"
    winner = t.winner
    best = carrier(samples, keys, winner)
    usage, cost = spent(state.get("calls", []))
    budget = len(state["models"]) * state["per_model"]
    saved = max(0, budget - len(samples))
    get_stream_writer()({"type": "decision", "strategy": "modelswitch", "answer": winner or "", "votes": t.rounded(),
                         "samples": len(samples), "samples_saved": saved,
                         "reason": rule if winner is not None else "no sample gave a valid answer"})
    extra = {"stopped": state.get("stop") or "budget", "mode": p.mode, "vote": p.vote, "threshold": p.threshold,
             "per_model": {m: {"votes": per_model[m].rounded(), "share": round(per_model[m].share, 4),
                               "samples": len(pos[m]), "consistency_weight": round(weights_by_model[m], 4)}
                           for m in models},
             "budget": budget, "answers": keys, "sample_models": [s["deployment"] for s in samples], "candidates": state["models"]}
    if len(state["models"]) < 2:
        extra["note"] = "only one candidate deployment: ModelSwitch reduces to self-consistency with a threshold"
    if winner is None:
        extra["no_valid_answer"] = True
    return {"result": StrategyResult(
        answer=winner or "", text=(best or samples[0])["text"], deployments=models, votes=t.rounded(),
        samples=len(samples), samples_saved=saved, usage=usage, cost_usd=cost,
        latency_s=time.monotonic() - state["started"], strategy="modelswitch", extra=extra)}


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
