"""Plain thinking vs ThoughtMani vs TrimR on a fixed GSM8K subset, on the local pool's llama.cpp servers.

    python bench/bench_thinking.py [--n 30] [--seed 0] [--budget 1024] [--arms plain,thoughtmani,trimr]
                                   [--items bench/results/thinking-items.jsonl] [--record-traces FILE]

The reasoner is Qwen2.5-Coder-1.5B-Instruct prompted to think inside ``<think>`` tags and double-check
itself (its ``thinking.prompt`` in configs/pools/local.yaml) — no package here carries a real reasoning
model, so this measures the machinery on a stand-in, not the papers' setting (see
configs/pools/gpu-thinking.yaml for that). Qwen2.5-Coder-0.5B-Instruct plans (ThoughtMani) and verifies
(TrimR). Arms, all greedy (temperature 0), all on the same code path where they can be:

* ``plain``: strategy ``trimr`` with ``monitor=false`` — the reasoner thinks until it closes its
  thinking or the budget runs out, then answers;
* ``thoughtmani``: the 0.5B writes the plan, the 1.5B's thinking is prefilled with it;
* ``trimr``: the same thinking as ``plain``, watched: the answer module, then the 0.5B verifier.

Per arm: thinking tokens (the reasoner's thinking; for ThoughtMani the planner's tokens plus any the
reasoner thought itself), completion tokens of every model, accuracy (exact numeric match with the
gold ``####`` answer) and wall time per question, each with its standard error over questions.

Incremental and resumable: each (question, arm) result is appended to ``--items`` as it finishes; a
rerun with the same settings skips what is there. The summary goes to bench/results/thinking.json.
``--record-traces FILE`` also writes the plain arm's thinking as TrimR trace lines
(:mod:`junto.reasoning.trimr.offline`) for ``junto eval-trimr``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, gsm8k_gold, gsm8k_subset, load_items, local_pool, mean_se, save, settings_hash  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REASONER, HELPER = "qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"
ARMS = ("plain", "thoughtmani", "trimr")


def arm_params(arm: str, args) -> tuple[str, dict]:
    common = {"temperature": 0.0, "seed": args.seed, "thinking_budget": args.budget, "answer": "number"}
    if arm == "plain":
        return "trimr", {**common, "reasoner": REASONER, "monitor": False, "answer_tokens": args.answer_tokens}
    if arm == "trimr":
        return "trimr", {**common, "reasoner": REASONER, "verifier": HELPER, "answer_tokens": args.answer_tokens}
    # the reasoner writes its working after the plan: it gets the thinking budget on top of the answer's
    return "thoughtmani", {**common, "reasoner": REASONER, "planner": HELPER,
                           "answer_tokens": args.budget + args.answer_tokens}


def settings_key(args) -> str:
    return settings_hash({"seed": args.seed, "budget": args.budget, "answer_tokens": args.answer_tokens})


async def run_items(args, items, done, items_path: Path, key: str) -> None:
    from junto.answers import is_correct
    from junto.pool.client import PoolClient
    from junto.reasoning import RunContext, run_strategy

    # only the two models the arms use (running `local` servers are reused, never stopped)
    with local_pool([HELPER, REASONER], REASONER) as (pool, endpoints):
        async with PoolClient(pool, endpoints) as client:
            with items_path.open("a") as out:
                for no, (line, row) in enumerate(items):
                    for arm in args.arms:
                        if (line + 1, arm) in done:
                            continue
                        name, params = arm_params(arm, args)
                        ctx = RunContext(client=client, pool=pool, candidates=[REASONER])
                        msgs = [{"role": "user", "content": row["question"]}]
                        t = time.perf_counter()
                        r = await run_strategy(name, ctx, msgs, params)
                        wall = time.perf_counter() - t
                        x = r.extra
                        thinking = x.get("thinking_tokens", 0) + (x.get("plan_tokens") or 0)
                        rec = {"settings": key, "gsm8k_line": line + 1, "arm": arm, "gold": gsm8k_gold(row),
                               "answer": r.answer, "correct": bool(r.answer) and is_correct(r.answer, gsm8k_gold(row),
                                                                                            "number"),
                               "thinking_tokens": thinking, "completion_tokens": r.usage.completion_tokens,
                               "prompt_tokens": r.usage.prompt_tokens, "wall_s": round(wall, 2),
                               "ended": x.get("ended"), "thoughts": x.get("thoughts"),
                               "verifier_calls": x.get("verifier_calls"), "plan_stop": x.get("plan_stop"),
                               "question": row["question"], "thinking": x.get("thinking") or x.get("plan"),
                               "text": r.text, "trace": x.get("trace")}
                        out.write(json.dumps(rec) + "\n")
                        out.flush()
                        done[(line + 1, arm)] = rec
                        print(f"[{no + 1}/{len(items)}] line {line + 1} {arm:12s} {rec['ended']:13s} "
                              f"think {thinking:4d} tok · total {r.usage.completion_tokens:4d} tok · "
                              f"{wall:6.1f}s · {r.answer!r} vs {gsm8k_gold(row)} {'✓' if rec['correct'] else '✗'}",
                              flush=True)


def summarize(args, items, done) -> dict:
    arms = {}
    lines = [line + 1 for line, _ in items]
    for arm in args.arms:
        recs = [done[(ln, arm)] for ln in lines if (ln, arm) in done]
        arms[arm] = {"questions": len(recs), "accuracy": mean_se([float(r["correct"]) for r in recs]),
                     "thinking_tokens": mean_se([r["thinking_tokens"] for r in recs]),
                     "completion_tokens": mean_se([r["completion_tokens"] for r in recs]),
                     "wall_s": mean_se([r["wall_s"] for r in recs]),
                     "ended": {e: sum(1 for r in recs if r["ended"] == e) for e in {r["ended"] for r in recs}}}
    paired = {}
    for arm in args.arms:
        if arm == "plain":
            continue
        both = [ln for ln in lines if (ln, arm) in done and (ln, "plain") in done]
        if both:
            paired[f"{arm}_minus_plain"] = {
                "questions": len(both),
                "thinking_tokens": mean_se([done[(ln, arm)]["thinking_tokens"] - done[(ln, "plain")]["thinking_tokens"]
                                            for ln in both]),
                "accuracy": mean_se([float(done[(ln, arm)]["correct"]) - float(done[(ln, "plain")]["correct"])
                                     for ln in both]),
                "wall_s": mean_se([done[(ln, arm)]["wall_s"] - done[(ln, "plain")]["wall_s"] for ln in both])}
    return {"dataset": "gsm8k/train.jsonl", "n": len(items), "seed": args.seed, "gsm8k_lines": lines,
            "reasoner": REASONER, "planner_verifier": HELPER, "thinking_budget": args.budget,
            "answer_tokens": args.answer_tokens, "arms": arms, "paired": paired,
            "note": "a 1.5B instruct model prompted to think, not a reasoning model; CPU llama.cpp, "
                    "servers shared with other work on this machine: wall times are noisy"}


def record_traces(path: Path, items, done) -> int:
    n = 0
    with path.open("w") as out:
        for line, row in items:
            r = done.get((line + 1, "plain"))
            if r is None or not r.get("thinking"):
                continue
            out.write(json.dumps({"question": row["question"], "answer": gsm8k_gold(row), "trace": r["thinking"],
                                  "final": r["text"], "thinking_tokens": r["thinking_tokens"],
                                  "model": f"{REASONER} (Q4_K_M, llama.cpp) prompted to think (configs/pools/local.yaml)",
                                  "source": f"gsm8k/train.jsonl line {line + 1}"}) + "\n")
            n += 1
    return n


def main() -> None:
    # a SIGTERM ends the run like Ctrl-C: the servers this run started are stopped, finished items are kept
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="questions (a seeded sample of GSM8K train)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=1024, help="thinking budget in tokens")
    ap.add_argument("--answer-tokens", type=int, default=128)
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated: plain, thoughtmani, trimr")
    ap.add_argument("--items", type=Path, default=RESULTS / "thinking-items.jsonl",
                    help="per-(question, arm) results, appended as they finish; a rerun resumes")
    ap.add_argument("--record-traces", type=Path, default=None, help="write the plain arm's thinking as TrimR traces")
    args = ap.parse_args()
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arms if a not in ARMS]
    if bad or args.n < 1:
        ap.error(f"unknown arm(s) {bad}; choose from {', '.join(ARMS)}" if bad else "--n must be at least 1")
    items = gsm8k_subset(args.n, args.seed)
    key = settings_key(args)
    args.items.parent.mkdir(parents=True, exist_ok=True)
    done = load_items(args.items, key)
    todo = sum(1 for line, _ in items for a in args.arms if (line + 1, a) not in done)
    print(f"{len(items)} questions × {len(args.arms)} arms: {todo} to run, "
          f"{len(items) * len(args.arms) - todo} already in {args.items}", flush=True)
    t0 = time.perf_counter()
    if todo:
        asyncio.run(run_items(args, items, done, args.items, key))
    results = summarize(args, items, done)
    results["run_wall_s"] = round(time.perf_counter() - t0, 1)
    if args.record_traces is not None:
        print(f"wrote {record_traces(args.record_traces, items, done)} traces to {args.record_traces}")
    save("thinking", results)


if __name__ == "__main__":
    main()
