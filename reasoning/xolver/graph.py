"""The ``xolver`` graph: plan → recall → (agents → judge)×rounds → finish.

``plan`` has the planner draft roles and pick the team; ``recall`` retrieves exemplars from the experience
memory; ``agents`` runs one round (the m agents concurrently); ``judge`` scores that round's answers and
decides whether to stop; ``finish`` writes the best verified answer back and builds the result. Each round
is two supersteps, so with a checkpointer a killed run resumes after the last finished one and never asks
a finished round's agents again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from junto.errors import BackendError
from junto.pool.types import Usage
from junto.reasoning.common import StrategyResult, acquire, sampling_kwargs, time_left
from junto.reasoning.context import RunContext
from junto.reasoning.trimr import roles as picks
from junto.reasoning.trimr.run import question_of
from junto.reasoning.xolver.examples import defined_functions, example_tests, function_prompt
from junto.reasoning.xolver.judge import judge_codes, judge_llm
from junto.reasoning.xolver.logic import (agent_messages, best_answer, best_verified, choose_roles, planner_messages,
                                          snippet, stop_reason, top_answers)
from junto.reasoning.xolver.state import XolverParams, XolverState

S = "xolver"
#: tokens an agent writes when neither the parameters nor the run cap them
DEFAULT_AGENT_TOKENS = 512


def experience_store(mem: Any) -> Any:
    """``ctx.memory`` when it is an experience store (``search``/``add``/``add_many``), else None (a thought-template
    store, or nothing)."""
    if mem is None:
        return None
    try:
        from junto.memory.experience import ExperienceStore
    except ImportError:  # pragma: no cover - the memory package is part of junto
        ExperienceStore = ()  # noqa: N806
    if ExperienceStore and isinstance(mem, ExperienceStore):
        return mem
    return mem if all(callable(getattr(mem, a, None)) for a in ("search", "add", "add_many")) else None


def _problem(state: XolverState) -> str:
    """The problem as memory keys it: the function prompt for code, else the question."""
    return state["prompt_code"] if state.get("code") else state["question"]


def _usage_dict(u: Any, cost: float = 0.0) -> dict[str, Any]:
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "estimated": u.estimated,
            "cost_usd": cost}


async def plan(state: XolverState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    from junto.routers.tasks import SkipItem, humaneval_entry_point, is_function_prompt

    ctx = runtime.context
    p: XolverParams = state["params"]
    writer = get_stream_writer()
    question = question_of(state["messages"])
    code, prompt_code, entry, examples = is_function_prompt(question), "", "", []
    if code:
        prompt_code = function_prompt(question)
        try:
            entry = humaneval_entry_point(prompt_code)
        except SkipItem:
            names = defined_functions(prompt_code)
            entry = names[-1] if names else ""
        code = bool(entry)
        examples = [list(t) for t in example_tests(prompt_code)] if code else []
    agents = [picks.pick(ctx, "agent", name) for name in p.agent_models] if p.agent_models else [ctx.candidates[0]]
    planner = picks.pick(ctx, "planner", p.planner, reasoner=agents[0])
    # code with examples: the sandbox judges; code without any example to run, and everything else: an LLM
    judge = None if examples else picks.pick(ctx, "verifier", p.judge, reasoner=agents[0])
    drafted = p.drafted or p.agents + 2
    writer({"type": "model_call", "strategy": S, "deployment": planner, "n": 1, "first_index": 0, "round": 0,
            "agent": "planner"})
    text, usage, error = "", {"prompt_tokens": 0, "completion_tokens": 0, "estimated": False, "cost_usd": 0.0}, None
    try:
        r = await ctx.client.chat(planner, planner_messages(question, drafted, p.agents), max_tokens=p.plan_tokens,
                                  temperature=0.0)
        text, usage = r.text, _usage_dict(r.usage, r.cost_usd)
    except BackendError as exc:  # a planner that fails leaves the built-in roles
        error = exc.message
        writer({"type": "error", "strategy": S, "deployment": planner, "kind": "backend_error", "error": error})
    chosen, info = choose_roles(text, p.agents)
    if error:
        info["fallback"] = f"the planner failed ({error}): built-in roles were used"
    team = [{**r, "agent": i, "deployment": agents[i % len(agents)]} for i, r in enumerate(chosen)]
    writer({"type": "xolver_roles", "strategy": S, "planner": planner, "judge": judge or "sandbox (example tests)",
            "drafted": info["drafted"], "roles": [{"name": r["name"], "deployment": r["deployment"]} for r in team],
            "fallback": info["fallback"], "examples": len(examples) if code else None})
    return {"question": question, "code": code, "prompt_code": prompt_code, "entry": entry, "examples": examples,
            "planner": planner, "judge": judge, "roles": team, "roles_info": {**info, "raw": text},
            "plan_usage": usage, "round": 0, "answers": [],
            "judge_usage": {"prompt_tokens": 0, "completion_tokens": 0, "estimated": False, "cost_usd": 0.0}}


async def recall(state: XolverState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    p: XolverParams = state["params"]
    writer = get_stream_writer()
    store = experience_store(ctx.memory)
    if store is None or p.memory_k == 0:
        why = "no experience memory" if store is None else "memory_k is 0"
        writer({"type": "xolver_memory", "strategy": S, "hits": [], "searched": False, "reason": why})
        return {"hits": []}
    problem = _problem(state)
    found = await asyncio.to_thread(store.search, problem, p.memory_k, kind="experience", task=p.memory_task,
                                    verified_only=True, exclude_problem=problem)
    hits = [{"id": str(getattr(e, "id", "")), "problem": e.problem, "solution": e.solution, "score": float(e.score),
             "fused": float(fused), "source": e.source, "task": e.task, "verified": bool(e.verified)}
            for e, fused in found]
    writer({"type": "xolver_memory", "strategy": S, "searched": True,
            "hits": [{"problem": snippet(" ".join(h["problem"].split()), 80), "fused": h["fused"],
                      "score": h["score"], "source": h["source"]} for h in hits]})
    return {"hits": hits}


async def _one_agent(ctx: RunContext, writer, role: dict[str, Any], msgs: list[dict[str, str]], kw: dict[str, Any],
                     round_no: int, started: float) -> dict[str, Any]:
    dep = role["deployment"]
    writer({"type": "model_call", "strategy": S, "deployment": dep, "n": 1, "first_index": role["agent"],
            "round": round_no, "agent": role["agent"]})
    base = {"round": round_no, "agent": role["agent"], "role": role["name"], "deployment": dep, "score": None,
            "verified": False}
    empty = {"text": "", "answer": "", "prompt_tokens": 0, "completion_tokens": 0, "estimated": False,
             "cost_usd": 0.0, "finish_reason": None}
    permit = await acquire(ctx, dep, started)  # the caller's circuit breaker: a cooling deployment is not called
    if permit is None:
        error = f"{dep}: not called (circuit open or deadline passed)"
        writer({"type": "error", "strategy": S, "deployment": dep, "kind": "unavailable", "error": error,
                "round": round_no, "agent": role["agent"]})
        return {**base, **empty, "error": error}
    left = time_left(ctx, started)
    try:
        r = await ctx.client.chat(dep, msgs, timeout=max(left, 0.05) if left is not None else None, **kw)
    except BackendError as exc:
        permit.report(exc)
        writer({"type": "error", "strategy": S, "deployment": dep, "kind": "backend_error", "error": exc.message,
                "round": round_no, "agent": role["agent"]})
        return {**base, **empty, "error": exc.message}
    except BaseException:
        permit.release()
        raise
    permit.success()
    choice = r.choices[0] if r.choices else None
    return {**base, "text": r.text, "answer": "", "error": None, "prompt_tokens": r.usage.prompt_tokens,
            "completion_tokens": r.usage.completion_tokens, "estimated": r.usage.estimated, "cost_usd": r.cost_usd,
            "finish_reason": choice.finish_reason if choice else None}


async def agents(state: XolverState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    p: XolverParams = state["params"]
    writer = get_stream_writer()
    round_no = state["round"] + 1
    writer({"type": "xolver_round", "strategy": S, "round": round_no, "rounds": p.rounds, "agents": len(state["roles"])})
    answers = state["answers"]
    shared_all = top_answers(answers, p.shared_k + 1)
    kw = sampling_kwargs(p, ctx)
    kw.setdefault("max_tokens", DEFAULT_AGENT_TOKENS)
    calls = []
    for role in state["roles"]:
        mine = [a for a in answers if a["agent"] == role["agent"]]
        previous = mine[-1] if mine else None
        shared = [a for a in shared_all if a is not previous][:p.shared_k]
        msgs = agent_messages(state["question"], role, m=len(state["roles"]), round_no=round_no, rounds=p.rounds,
                              code=state["code"], hits=state.get("hits") or [], previous=previous, shared=shared,
                              budget=p.context_chars, entry=state.get("entry") or None)
        akw = dict(kw)
        if p.seed is not None:
            akw["seed"] = p.seed + 1000 * round_no + role["agent"]
        calls.append(_one_agent(ctx, writer, role, msgs, akw, round_no, state["started"]))
    new = await asyncio.gather(*calls)
    return {"answers": [*answers, *new]}


async def judge(state: XolverState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    from junto.answers import extract
    from junto.routers.tasks import extract_code

    ctx = runtime.context
    p: XolverParams = state["params"]
    writer = get_stream_writer()
    round_no = state["round"] + 1
    answers = [dict(a) for a in state["answers"]]
    new = [a for a in answers if a["round"] == round_no]
    ju = dict(state["judge_usage"])
    if state["examples"]:
        tests = [tuple(t) for t in state["examples"]]
        verdicts = await judge_codes([a["text"] for a in new], state["prompt_code"], state["entry"], tests,
                                     timeout_s=p.sandbox_timeout_s, memory_mb=p.sandbox_memory_mb)
        for a, v in zip(new, verdicts):
            a.update(answer=extract_code(a["text"]), score=v.score, verified=v.verified,
                     passed=v.passed, tests=v.total, note=v.note)
    else:
        async def one(a: dict[str, Any]) -> None:
            a["answer"] = extract_code(a["text"]) if state["code"] else (extract(a["text"], p.answer) or "")
            if not a["text"].strip():
                a.update(score=0.0, verified=False, note="no answer")
                return
            try:
                prob, u = await judge_llm(ctx.client, state["judge"], state["question"], a["text"])
            except BackendError as exc:
                writer({"type": "error", "strategy": S, "deployment": state["judge"], "kind": "backend_error",
                        "error": exc.message})
                a.update(score=0.0, verified=False, note=f"judge failed: {exc.message}")
                return
            ju["prompt_tokens"] += u.prompt_tokens
            ju["completion_tokens"] += u.completion_tokens
            a.update(score=prob, verified=prob >= p.threshold, note=None)

        await asyncio.gather(*(one(a) for a in new))
    for a in new:
        writer({"type": "xolver_agent", "strategy": S, "round": round_no, "agent": a["agent"], "role": a["role"],
                "deployment": a["deployment"], "answer": snippet(" ".join((a["answer"] or a["text"]).split()), 120),
                "score": a["score"], "verified": a["verified"], "passed": a.get("passed"), "tests": a.get("tests"),
                "note": a.get("note"), "tokens": a["completion_tokens"]})
    best = best_answer(new)
    stop = stop_reason(answers, round_no, p.rounds, p.early_stop)
    left = time_left(ctx, state["started"])
    if stop is None and left is not None and left <= 0:
        stop = "deadline"  # the run's deadline_s is spent: no further round
    writer({"type": "xolver_judge", "strategy": S, "round": round_no, "best_agent": best["agent"] if best else None,
            "best_role": best["role"] if best else None, "best_score": best["score"] if best else None,
            "verified": bool(best and best["verified"]), "judge": state["judge"] or "sandbox"})
    if stop == "verified":
        writer({"type": "xolver_stop", "strategy": S, "round": round_no, "reason": "verified",
                "rounds_saved": p.rounds - round_no})
    return {"answers": answers, "round": round_no, "stopped": stop or "", "judge_usage": ju}


def _next(state: XolverState) -> str:
    return "finish" if state.get("stopped") else "agents"


async def finish(state: XolverState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    from junto.routers.tasks import extract_code

    ctx = runtime.context
    p: XolverParams = state["params"]
    writer = get_stream_writer()
    answers = state["answers"]
    best = best_answer(answers) or (answers[-1] if answers else None)
    chosen = best_verified(answers)
    store = experience_store(ctx.memory)
    wrote: dict[str, Any] | None = None
    if store is not None and chosen is not None:
        from junto.memory.experience import Experience

        solution = f"```python\n{extract_code(chosen['text'])}\n```" if state["code"] else chosen["text"]
        exp = Experience(problem=_problem(state), solution=solution, score=float(chosen["score"]), verified=True,
                         task=p.task or ("code" if state["code"] else "general"),
                         source=f"xolver:{chosen['deployment']}",
                         meta={"rounds": state["round"], "round": chosen["round"], "role": chosen["role"],
                               "agent": chosen["agent"], "strategy": S})
        exp_id = await asyncio.to_thread(store.add, exp)
        wrote = {"id": str(exp_id), "score": exp.score, "role": chosen["role"], "round": chosen["round"]}
        writer({"type": "xolver_memory_write", "strategy": S, "wrote": True, **wrote})
    else:
        why = "no experience memory" if store is None else "no answer was verified: nothing written"
        writer({"type": "xolver_memory_write", "strategy": S, "wrote": False, "reason": why})
    pu, ju = state["plan_usage"], state["judge_usage"]
    usage = Usage(pu["prompt_tokens"], pu["completion_tokens"], pu["estimated"])
    usage = usage + Usage(ju["prompt_tokens"], ju["completion_tokens"], ju["estimated"])
    cost = pu["cost_usd"] + ju["cost_usd"]
    per_agent: dict[str, int] = {}
    for a in answers:
        usage = usage + Usage(a["prompt_tokens"], a["completion_tokens"], a["estimated"])
        cost += a["cost_usd"]
        key = f"{a['agent']}:{a['role']}"
        per_agent[key] = per_agent.get(key, 0) + a["completion_tokens"]
    judge_dep = state.get("judge")
    if judge_dep is not None and ju["prompt_tokens"]:
        cost += ctx.pool.deployment(judge_dep).price.cost(ju["prompt_tokens"], ju["completion_tokens"])
    text = best["text"] if best else ""
    answer = (extract_code(text) if state["code"] else best.get("answer", "")) if best else ""
    rounds_run = state["round"]
    extra = {
        "roles": [{"name": r["name"], "description": r["description"], "deployment": r["deployment"]}
                  for r in state["roles"]],
        "roles_fallback": state["roles_info"].get("fallback"), "drafted": state["roles_info"].get("drafted"),
        "planner": state["planner"], "judge": judge_dep or "sandbox", "code": state["code"],
        "examples": len(state["examples"]) if state["code"] else None,
        "rounds_run": rounds_run, "stopped": state.get("stopped"),
        "round_scores": [[a["score"] for a in answers if a["round"] == r] for r in range(1, rounds_run + 1)],
        "verified": bool(best and best.get("verified")),
        "best": {"round": best["round"], "agent": best["agent"], "role": best["role"], "score": best["score"]}
        if best else None,
        "memory_hits": [{"id": h["id"], "problem": snippet(h["problem"], 200), "fused": h["fused"],
                         "score": h["score"], "source": h["source"]} for h in state.get("hits") or []],
        "wrote_memory": wrote is not None, "memory_write": wrote, "tokens_per_agent": per_agent,
        "errors": [{"round": a["round"], "agent": a["agent"], "error": a["error"]} for a in answers if a.get("error")],
    }
    # the deployment whose answer this is first (the result's ``deployment``), then the others that answered
    deployments = list(dict.fromkeys([*([best["deployment"]] if best else []),
                                      *(a["deployment"] for a in answers if not a.get("error")), state["planner"],
                                      *([judge_dep] if judge_dep else [])]))
    return {"result": StrategyResult(
        answer=answer or "", text=text, deployments=deployments, votes=None, samples=len(answers), samples_saved=
        (p.rounds - rounds_run) * len(state["roles"]), usage=usage, cost_usd=cost,
        latency_s=time.monotonic() - state["started"], strategy=S, extra=extra)}


builder = StateGraph(XolverState, context_schema=RunContext)
builder.add_node("plan", plan)
builder.add_node("recall", recall)
builder.add_node("agents", agents)
builder.add_node("judge", judge)
builder.add_node("finish", finish)
builder.add_edge(START, "plan")
builder.add_edge("plan", "recall")
builder.add_edge("recall", "agents")
builder.add_edge("agents", "judge")
builder.add_conditional_edges("judge", _next, ["agents", "finish"])
builder.add_edge("finish", END)

graph = builder.compile(name="xolver")
