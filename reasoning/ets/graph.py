"""The ``ets`` / ``rebase`` graph: one ``step`` node per tree depth, looping, then ``decide``.

A depth: sample the frontier's children (:func:`junto.reasoning.ets.search.sample_steps`), score the
new steps (:mod:`junto.reasoning.ets.scorers`), mark the finished ones (a stated answer, an empty step,
the path's token cap, the depth cap), give each finished path one unit of width (the reference's
rule: the width left shrinks by one per finished path), and let the selection — REBASE or ETS, the
only difference between the two strategies — decide how many children each unfinished node gets.
Events per depth (``ets_step``): nodes sampled, finished, kept, pruned, KV tokens retained (the
tree's unique-prefix count), and the server's cached prompt tokens where it reports them.
"""

from __future__ import annotations

import time
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from junto.answers import answer_keys, answer_span
from junto.errors import BackendError
from junto.pool.types import Usage
from junto.reasoning.common import StrategyResult, time_left
from junto.reasoning.context import RunContext
from junto.reasoning.ets import select as sel
from junto.reasoning.ets import tree as tr
from junto.reasoning.ets.scorers import make_scorer
from junto.reasoning.ets.search import embed_steps, prefill_for, sample_steps
from junto.reasoning.ets.state import STEP_DELIMITER, ETSParams, ETSState
from junto.reasoning.voting import tally


def question_of(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user" and isinstance(m.get("content"), str):
            return m["content"]
    return ""


def path_text(nodes: list[tr.Node], node_id: int) -> str:
    return STEP_DELIMITER.join(tr.steps(nodes, node_id))


def finish_of(node: tr.Node, nodes: list[tr.Node], p: ETSParams) -> str | None:
    """Why a new step ends its path (None: it goes on). Pure."""
    if answer_span(node["text"]) is not None:
        return "answer"
    if not node["text"].strip():
        return "empty"
    if tr.path_tokens(nodes, node["id"]) >= p.path_tokens:
        return "path_tokens"
    if node["depth"] >= p.max_depth:
        return "depth"
    return None


async def step(state: ETSState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    p: ETSParams = state["params"]
    writer = get_stream_writer()
    nodes = [dict(n) for n in state["nodes"]]  # type: ignore[misc]
    depth = state.get("depth", 0)
    dep = state["deployment"]
    started = state["started"]
    left = time_left(ctx, started)
    if left is not None and left <= 0:
        return {"stop": "deadline"}
    jobs = [(nid, prefill_for(tr.steps(nodes, nid)), count) for nid, count in state["frontier"]]
    t0 = time.perf_counter()
    outs, cut = await sample_steps(ctx, dep, state["messages"], jobs, p, started,
                                   seed_base=sum(1 for n in nodes if n["parent"] is not None))
    gen_s = time.perf_counter() - t0
    errors = list(state.get("errors", []))
    failed = state.get("failed", 0)
    prompt_t, completion_t = state.get("prompt_tokens", 0), state.get("completion_tokens", 0)
    cached_t, cached_seen = state.get("cached_tokens", 0), state.get("cached_reported", False)
    new: list[int] = []
    step_prompt = step_cached = 0
    for o in outs:
        if o.error is not None:
            failed += 1
            errors.append({"depth": depth, "parent": o.parent, "kind": o.error_kind, "error": o.error})
            writer({"type": "error", "strategy": p.selection, "deployment": dep, "kind": o.error_kind,
                    "error": o.error})
            continue
        if nodes[0]["tokens"] == 0 and o.parent == 0:
            nodes[0]["tokens"] = o.prompt_tokens  # the root holds the question's prompt
        node = tr.add_child(nodes, o.parent, o.text.strip(), o.completion_tokens)  # type: ignore[arg-type]
        new.append(node["id"])
        prompt_t += o.prompt_tokens
        completion_t += o.completion_tokens
        step_prompt += o.prompt_tokens
        if o.cached_tokens is not None:
            cached_t += o.cached_tokens
            step_cached += o.cached_tokens
            cached_seen = True
    update: dict[str, Any] = {"errors": errors, "failed": failed, "prompt_tokens": prompt_t,
                              "completion_tokens": completion_t, "cached_tokens": cached_t,
                              "cached_reported": cached_seen, "depth": depth + 1}
    if not new:
        update.update(nodes=nodes, frontier=[], stop="deadline" if cut else "backend_error")
        return update
    # score every new step (finished ones too: the final vote weighs leaves by their score)
    scorer = make_scorer(p.scorer, ctx.client, ctx.pool)
    scores = await scorer.score(question_of(state["messages"]), [tr.steps(nodes, i) for i in new])
    for i, s in zip(new, scores):
        nodes[i]["score"] = float(s)
    width_left = state["width_left"]
    candidates: list[int] = []
    for i in new:
        why = finish_of(nodes[i], nodes, p)  # type: ignore[arg-type]
        if why is None:
            candidates.append(i)
            continue
        nodes[i]["finished"], nodes[i]["finish"] = True, why
        nodes[i]["answer"] = answer_keys([path_text(nodes, i)], p.answer)[0]  # type: ignore[arg-type]
        width_left -= 1
    finished_now = len(new) - len(candidates)
    cand_scores = [nodes[i]["score"] for i in candidates]
    info: dict[str, Any] = {}
    selection = None
    if candidates and width_left > 0 and not cut:
        if p.selection == "rebase":
            selection = sel.rebase_select(cand_scores, width_left, p.softmax_temperature)
        else:
            texts = [nodes[i]["text"] for i in candidates]
            labels = None
            if p.lambda_s > 0 and len(candidates) > 1 and len(set(texts)) > 1:
                labels = sel.cluster_labels(await embed_steps(p.embedder, texts), p.cluster_distance)
            selection = sel.ets_select(nodes, candidates, cand_scores, width_left,  # type: ignore[arg-type]
                                       temperature=p.softmax_temperature, lambda_c=p.lambda_c, lambda_s=p.lambda_s,
                                       clusters=labels)
            rebase_alloc = sel.rebase_allocate(cand_scores, width_left, p.softmax_temperature)
            info["kv_tokens_rebase"] = tr.kv_tokens(nodes, [c for c, a in zip(candidates, rebase_alloc) if a])  # type: ignore[arg-type]
            if selection.ilp is not None:
                info.update(ilp_ms=round(selection.ilp.solve_s * 1000, 3), ilp_rows=selection.ilp.rows,
                            clusters=selection.ilp.clusters or None)
    frontier = [[c, a] for c, a in zip(candidates, selection.alloc) if a > 0] if selection else []
    kept = [c for c, _ in frontier]
    record = {"depth": depth + 1, "nodes": len(new), "finished": finished_now, "candidates": len(candidates),
              "kept": len(kept), "pruned": len(candidates) - len(kept), "expansions": sum(a for _, a in frontier),
              "width_left": width_left, "kv_tokens": tr.kv_tokens(nodes, kept),  # type: ignore[arg-type]
              "kv_tokens_candidates": tr.kv_tokens(nodes, candidates),  # type: ignore[arg-type]
              "prompt_tokens": step_prompt, "cached_tokens": step_cached if cached_seen else None,
              "generate_s": round(gen_s, 3), "scores": [round(s, 3) for s in cand_scores],
              "expand": frontier, **info}
    writer({"type": "ets_step", "strategy": p.selection, **record})
    update.update(nodes=nodes, frontier=frontier, width_left=width_left, steps=[*state.get("steps", []), record],
                  stop="deadline" if cut else (None if frontier else "done"))
    return update


def route(state: ETSState) -> str:
    return "decide" if state.get("stop") else "step"


async def decide(state: ETSState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    p: ETSParams = state["params"]
    nodes: list[tr.Node] = state.get("nodes", [])
    leaves = tr.leaves(nodes)
    partial = False
    if not leaves:  # stopped before any path finished: vote over the deepest paths reached
        deepest = max((n["depth"] for n in nodes), default=0)
        leaves = [n["id"] for n in nodes if n["depth"] == deepest and n["parent"] is not None]
        partial = True
    if not leaves:
        errors = state.get("errors", [])
        last = f"; last error: {errors[-1]['error']}" if errors else ""
        raise BackendError(f"{p.selection}: no step was sampled ({state.get('stop')}){last}",
                           hint="check the deployment (`junto pool status`), or raise deadline_s",
                           deployment=state.get("deployment", ""), retryable=True)
    texts = [path_text(nodes, i) for i in leaves]
    keys = [nodes[i]["answer"] if nodes[i]["finished"] else None for i in leaves]
    if partial:
        keys = answer_keys(texts, p.answer)
    t = tally(keys, [nodes[i]["score"] for i in leaves], leaves)
    winner = t.winner
    carrier = next((i for i, k in zip(leaves, keys) if k == winner), leaves[0]) if winner is not None else leaves[0]
    steps = state.get("steps", [])
    kv = [s["kv_tokens"] for s in steps]
    usage = Usage(state.get("prompt_tokens", 0), state.get("completion_tokens", 0))
    cost = runtime.context.pool.deployment(state["deployment"]).price.cost(usage.prompt_tokens,
                                                                          usage.completion_tokens)
    why = (f"score-weighted vote {t.votes[winner]:.3g} of {sum(t.votes.values()):.3g} over {t.valid} answered leaves"
           if winner is not None else "no leaf gave a valid answer")
    get_stream_writer()({"type": "decision", "strategy": p.selection, "answer": winner or "", "votes": t.rounded(),
                         "samples": len(leaves), "reason": why})
    cached = state.get("cached_tokens", 0) if state.get("cached_reported") else None
    extra = {"selection": p.selection, "stopped": state.get("stop"), "depth": state.get("depth", 0),
             "leaves": len(leaves), "partial": partial, "valid": t.valid, "answers": keys,
             "nodes": len(nodes) - 1, "kv_tokens_sum": sum(kv), "kv_tokens_peak": max(kv, default=0),
             "cached_tokens": cached,
             "cache_hit_rate": round(cached / usage.prompt_tokens, 4) if cached is not None and usage.prompt_tokens
             else None,
             "failed": state.get("failed", 0), "errors": state.get("errors", []), "steps": steps,
             "scorer": p.scorer.kind, "tree": nodes}
    if winner is None:
        extra["no_valid_answer"] = True
    return {"result": StrategyResult(
        answer=winner or "", text=path_text(nodes, carrier), deployments=[state["deployment"]],
        votes=t.rounded(), samples=len(leaves), samples_saved=0, usage=usage, cost_usd=cost,
        latency_s=time.monotonic() - state["started"], strategy=p.selection, extra=extra)}


builder = StateGraph(ETSState, context_schema=RunContext)
builder.add_node("step", step)
builder.add_node("decide", decide)
builder.add_edge(START, "step")
builder.add_conditional_edges("step", route, ["step", "decide"])
builder.add_edge("decide", END)

#: deep trees loop one superstep per depth: past LangGraph's default limit of 25
graph = builder.compile(name="ets").with_config(recursion_limit=200)
