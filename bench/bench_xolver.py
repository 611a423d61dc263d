"""Xolver vs direct answers on HumanEval (and a GSM8K subset), on the local pool's llama.cpp servers.

    python bench/bench_xolver.py [--dataset humaneval|gsm8k] [--n 30] [--seed 0]
                                 [--arms direct-0.5b,direct-1.5b,xolver,xolver-mem] [--items FILE]

HumanEval's 164 problems are split once, seeded: a *memory half* and an *evaluation half*. The ``--n``
evaluated problems come from the evaluation half only. Arms, each graded on the problem's hidden tests
(``test`` + ``check(entry_point)``, run in :func:`junto.sandbox.run_python`; never shown to a strategy):

* ``direct-0.5b`` / ``direct-1.5b``: one greedy answer of Qwen2.5-Coder-0.5B / -1.5B-Instruct (strategy
  ``direct``, the prompt :func:`junto.routers.tasks.code_prompt` builds) — pass@1;
* ``xolver``: strategy ``xolver`` with the 1.5B as every agent and the 0.5B as planner, no memory;
* ``xolver-mem``: the same with an experience memory warmed, before the run, with the memory half's
  problems and their canonical solutions (verified, source ``canonical``); the run's own write-backs
  (best *verified* answers of problems evaluated earlier in the run) join it. The evaluated problem
  itself is never in it.

On GSM8K (``--dataset gsm8k``; a seeded subset of the train file): ``direct-*`` answer step by step,
graded by the number after ``####``; ``xolver`` uses the pool's LLM judge. ``xolver-mem`` is warmed with
other GSM8K train problems and their reference solutions.

Per arm: pass@1 (accuracy) ± its standard error over problems, completion tokens, wall time; paired
differences against ``direct-1.5b``; the oracle over arms (a problem counts when any arm solved it).
Incremental and resumable: each (problem, arm) result is appended to ``--items`` as it finishes.
The pool runs under its own state directory (``JUNTO_STATE_DIR``, default /tmp/junto-bench-xolver),
so it neither adopts nor stops servers of other junto work on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, gsm8k_gold, load_items, local_pool, mean_se, save, settings_hash  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HUMANEVAL = ROOT.parent / "shared" / "data" / "humaneval" / "HumanEval.jsonl.gz"
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
SMALL, BIG = "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"
ARMS = ("direct-0.5b", "direct-1.5b", "xolver", "xolver-mem")


def split(n_rows: int, seed: int) -> tuple[list[int], list[int]]:
    """(memory half, evaluation half) of row indices: one seeded permutation, cut in two."""
    idx = list(range(n_rows))
    random.Random(seed).shuffle(idx)
    half = n_rows // 2
    return idx[:half], idx[half:]


def load_rows(dataset: str) -> list[dict]:
    if dataset == "humaneval":
        with gzip.open(HUMANEVAL, "rt") as f:
            return [json.loads(line) for line in f if line.strip()]
    return [json.loads(line) for line in GSM8K.read_text().splitlines() if line.strip()]


def problem_of(dataset: str, row: dict) -> str:
    return row["prompt"] if dataset == "humaneval" else row["question"]


def arm_run(arm: str, args) -> tuple[str, dict, str]:
    """(strategy, params, first deployment) of an arm."""
    if arm.startswith("direct-"):
        dep = SMALL if arm == "direct-0.5b" else BIG
        return "direct", {"temperature": 0.0, "seed": args.seed, "max_tokens": args.max_tokens}, dep
    params = {"agents": args.agents, "rounds": args.rounds, "planner": SMALL, "agent_models": [BIG],
              "temperature": args.temperature, "seed": args.seed, "max_tokens": args.max_tokens}
    if args.dataset == "gsm8k":
        params["judge"] = SMALL
    return "xolver", params, BIG


def settings_key(args, arm: str) -> str:
    """Records are reused only under the same settings; a direct arm's do not depend on Xolver's."""
    base = {"dataset": args.dataset, "seed": args.seed, "max_tokens": args.max_tokens}
    if arm.startswith("xolver"):
        base.update(agents=args.agents, rounds=args.rounds, temperature=args.temperature)
    return settings_hash(base)


def warm_memory(args, rows: list[dict], memory_idx: list[int]):
    """The experience store the ``xolver-mem`` arm reads and writes: the memory half, verified."""
    from junto.memory.experience import Experience, ExperienceStore

    path = Path(args.memory)
    fresh = not path.exists()
    store = ExperienceStore(path)
    if fresh:
        exps = []
        for i in memory_idx:
            row = rows[i]
            if args.dataset == "humaneval":
                sol = row["prompt"].rstrip() + "\n" + row["canonical_solution"]
                exps.append(Experience(problem=row["prompt"], solution=f"```python\n{sol}\n```", score=1.0,
                                       verified=True, task="humaneval", source="canonical",
                                       meta={"task_id": row["task_id"]}))
            else:
                exps.append(Experience(problem=row["question"], solution=row["answer"].replace("####", "Answer:"),
                                       score=1.0, verified=True, task="gsm8k", source="reference",
                                       meta={"gsm8k_line": i + 1}))
        store.add_many(exps)
        print(f"memory: {len(exps)} experiences from the memory half in {path}", flush=True)
    else:
        print(f"memory: reusing {path} ({store.count()} experiences)", flush=True)
    return store


def grade(args, row: dict, text: str, answer: str) -> bool:
    if args.dataset == "humaneval":
        from junto.routers.tasks import grade_code, humaneval_tests

        return grade_code(text, humaneval_tests(row["test"], row["entry_point"]), prompt=row["prompt"]) == 1.0
    from junto.answers import extract, is_correct

    # every arm read the same way: the number the reply states (a direct answer's `answer` is its whole text)
    key = extract(text, "number")
    return bool(key) and is_correct(key, gsm8k_gold(row), "number")


def prompt_for(args, row: dict) -> str:
    if args.dataset == "humaneval":
        from junto.routers.tasks import code_prompt

        return code_prompt(row["prompt"])
    return (f"{row['question']}\n\nSolve it step by step, then give the final answer on its own line as "
            "\"Answer: <number>\".")


async def run_items(args, rows, eval_idx, memory_idx, done) -> None:
    from junto.pool.client import PoolClient
    from junto.reasoning import RunContext, run_strategy

    store = warm_memory(args, rows, memory_idx) if "xolver-mem" in args.arms else None
    try:
        with local_pool([SMALL, BIG], BIG) as (pool, endpoints):
            async with PoolClient(pool, endpoints) as client:
                with args.items.open("a") as out:
                    for no, i in enumerate(eval_idx):
                        row = rows[i]
                        for arm in args.arms:
                            if (i + 1, arm) in done:
                                continue
                            name, params, first = arm_run(arm, args)
                            ctx = RunContext(client=client, pool=pool, candidates=[first],
                                             memory=store if arm == "xolver-mem" else None)
                            msgs = [{"role": "user", "content": prompt_for(args, row)}]
                            t = time.perf_counter()
                            r = await run_strategy(name, ctx, msgs, params)
                            wall = time.perf_counter() - t
                            ok = await asyncio.to_thread(grade, args, row, r.text, r.answer)
                            x = r.extra or {}
                            rec = {"settings": settings_key(args, arm), "gsm8k_line": i + 1, "arm": arm,
                                   "task_id": row.get("task_id", f"gsm8k/{i + 1}"), "correct": ok,
                                   "completion_tokens": r.usage.completion_tokens, "prompt_tokens": r.usage.prompt_tokens,
                                   "wall_s": round(wall, 2), "rounds": x.get("rounds_run"),
                                   "verified": x.get("verified"), "memory_hits": len(x.get("memory_hits") or []),
                                   "wrote_memory": x.get("wrote_memory"), "text": r.text}
                            out.write(json.dumps(rec) + "\n")
                            out.flush()
                            done[(i + 1, arm)] = rec
                            print(f"[{no + 1}/{len(eval_idx)}] {rec['task_id']:16s} {arm:12s} "
                                  f"{r.usage.completion_tokens:5d} tok · {wall:6.1f}s · rounds {rec['rounds']} · "
                                  f"{'✓' if ok else '✗'}", flush=True)
    finally:
        if store is not None:
            store.close()


def summarize(args, eval_idx, done) -> dict:
    keys = [i + 1 for i in eval_idx]
    arms = {}
    for arm in args.arms:
        recs = [done[(k, arm)] for k in keys if (k, arm) in done]
        arms[arm] = {"problems": len(recs), "pass_at_1": mean_se([float(r["correct"]) for r in recs]),
                     "completion_tokens": mean_se([r["completion_tokens"] for r in recs]),
                     "wall_s": mean_se([r["wall_s"] for r in recs])}
        if arm.startswith("xolver"):
            arms[arm]["rounds"] = mean_se([r["rounds"] for r in recs])
            arms[arm]["memory_hits"] = mean_se([r["memory_hits"] for r in recs])
            arms[arm]["wrote_memory"] = sum(1 for r in recs if r.get("wrote_memory"))
    complete = [k for k in keys if all((k, a) in done for a in args.arms)]
    paired = {}
    if "direct-1.5b" in args.arms:
        for arm in args.arms:
            if arm == "direct-1.5b":
                continue
            both = [k for k in keys if (k, arm) in done and (k, "direct-1.5b") in done]
            paired[f"{arm}_minus_direct-1.5b"] = {
                "problems": len(both),
                "pass_at_1": mean_se([float(done[(k, arm)]["correct"]) - float(done[(k, "direct-1.5b")]["correct"])
                                      for k in both])}
    oracle = mean_se([float(any(done[(k, a)]["correct"] for a in args.arms)) for k in complete])
    best = max(arms, key=lambda a: (arms[a]["pass_at_1"]["mean"] or 0.0)) if arms else None
    return {"dataset": args.dataset, "n": len(eval_idx), "seed": args.seed, "evaluated": keys,
            "task_ids": [done[(k, a)]["task_id"] for k in keys for a in args.arms[:1] if (k, a) in done],
            "agents": args.agents, "rounds": args.rounds, "max_tokens": args.max_tokens,
            "temperature": args.temperature, "arms": arms, "paired": paired,
            "best_single_arm": best, "oracle_over_arms": oracle, "complete_problems": len(complete),
            "note": "CPU llama.cpp (Q4_K_M GGUF), servers shared with other work on this machine: wall times "
                    "are noisy; hidden tests only grade, the strategy sees the docstring's examples only"}


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=("humaneval", "gsm8k"), default="humaneval")
    ap.add_argument("--n", type=int, default=30, help="problems, from the evaluation half")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--agents", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--temperature", type=float, default=0.7, help="the Xolver agents' sampling temperature")
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--items", type=Path, default=None, help="default: bench/results/xolver-<dataset>-items.jsonl")
    ap.add_argument("--memory", type=Path, default=None,
                    help="the warmed experience store (default: /tmp/junto-bench-xolver/<dataset>-memory.db)")
    args = ap.parse_args()
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arms if a not in ARMS]
    if bad or args.n < 1:
        ap.error(f"unknown arm(s) {bad}; choose from {', '.join(ARMS)}" if bad else "--n must be at least 1")
    os.environ.setdefault("JUNTO_STATE_DIR", "/tmp/junto-bench-xolver")
    Path(os.environ["JUNTO_STATE_DIR"]).mkdir(parents=True, exist_ok=True)
    args.items = args.items or RESULTS / f"xolver-{args.dataset}-items.jsonl"
    args.memory = args.memory or Path(os.environ["JUNTO_STATE_DIR"]) / f"{args.dataset}-memory.db"
    rows = load_rows(args.dataset)
    memory_idx, eval_idx = split(len(rows), args.seed)
    if args.n > len(eval_idx):
        ap.error(f"--n must be at most {len(eval_idx)} (the evaluation half)")
    if args.dataset == "gsm8k":
        memory_idx = memory_idx[:200]  # a warm memory of 200 solved problems is plenty for retrieval
    eval_idx = eval_idx[:args.n]
    args.items.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    for arm in args.arms:
        done.update({k: r for k, r in load_items(args.items, settings_key(args, arm)).items() if k[1] == arm})
    if args.dataset == "gsm8k":  # graded again from the recorded text: cheap, and one rule for every record
        for (line, _), rec in done.items():
            rec["correct"] = grade(args, rows[line - 1], rec["text"], "")
    todo = sum(1 for i in eval_idx for a in args.arms if (i + 1, a) not in done)
    print(f"{len(eval_idx)} problems × {len(args.arms)} arms: {todo} to run", flush=True)
    t0 = time.perf_counter()
    if todo:
        asyncio.run(run_items(args, rows, eval_idx, memory_idx, done))
    results = summarize(args, eval_idx, done)
    results["run_wall_s"] = round(time.perf_counter() - t0, 1)
    save(f"xolver_{args.dataset}", results)


if __name__ == "__main__":
    main()
