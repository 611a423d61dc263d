"""sc@W vs REBASE vs ETS at equal width on a fixed GSM8K subset with the local 0.5B policy model.

    python bench/bench_ets.py [--n 30] [--width 4] [--max-depth 6] [--step-tokens 128] [--scorer arith]
                              [--arms sc,rebase,ets] [--items bench/results/ets-items.jsonl]

Per arm: accuracy ± standard error, KV tokens retained, tokens generated, wall time. KV (issue 12,
item 4) is counted on the tree with shared prefixes counted once (:func:`junto.reasoning.ets.tree.kv_tokens`):
``kv_sum`` sums, over the depths, the KV of the nodes kept for expansion (the reference's
``global_kv_size``); ``kv_peak`` is the largest of those; ``kv_final`` is the KV of all finished paths
at the end. For sc@W the W samples share only the prompt: ``kv_final = prompt + Σ completion tokens``
(and ``kv_peak`` the same, since all W paths are held until they end). ``cached_tokens`` is what
llama-server reported taking from its prompt cache. All arms get the same system prompt, W, temperature
1.0 and token budget per path (``max_depth × step_tokens``); a path cut at that budget votes with its last
number in every arm (sc: ``allow_truncated=true``), as a tree path cut at its depth or token cap does.

The subset is a seeded sample of ``../shared/data/gsm8k/train.jsonl``. Incremental and resumable:
each (question, arm) result is appended to ``--items`` as it finishes; a rerun with the same settings
skips what is done. Only the 0.5B server is used; servers already running are reused and never stopped.
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
POLICY = "qwen2.5-coder-0.5b"
ARMS = ("sc", "rebase", "ets")


def scorer_spec(text: str) -> dict:
    kind, _, dep = text.partition(":")
    return {"kind": kind, **({"deployment": dep} if dep else {})}


def arm_params(arm: str, args) -> tuple[str, dict]:
    from junto.reasoning.ets.state import SYSTEM_PROMPT

    if arm == "sc":
        # a path the tree search cuts at its token cap still votes (its last number): so does an sc sample
        return "sc", {"samples": args.width, "temperature": 1.0, "seed": args.seed, "early_stop": "none",
                      "answer": "number", "max_tokens": args.max_depth * args.step_tokens, "allow_truncated": True}
    return arm, {"width": args.width, "max_depth": args.max_depth, "step_tokens": args.step_tokens,
                 "path_tokens": args.max_depth * args.step_tokens, "temperature": 1.0, "seed": args.seed,
                 "answer": "number", "scorer": scorer_spec(args.scorer), "system": SYSTEM_PROMPT}


def settings_key(args) -> str:
    return settings_hash({"seed": args.seed, "width": args.width, "depth": args.max_depth,
                          "step": args.step_tokens, "scorer": args.scorer})


def record(arm: str, r, wall: float) -> dict:
    from junto.reasoning.ets import tree as T

    x = r.extra
    if arm == "sc":
        prompt_once = r.usage.prompt_tokens // max(1, r.samples)
        kv = prompt_once + r.usage.completion_tokens
        return {"kv_sum": None, "kv_peak": kv, "kv_final": kv, "depth": None, "leaves": r.samples,
                "cached_tokens": None}
    nodes = x["tree"]
    return {"kv_sum": x["kv_tokens_sum"], "kv_peak": x["kv_tokens_peak"],
            "kv_final": T.kv_tokens(nodes, T.leaves(nodes)), "depth": x["depth"], "leaves": x["leaves"],
            "cached_tokens": x["cached_tokens"], "stopped": x["stopped"],
            "steps": [{k: s.get(k) for k in ("depth", "nodes", "kept", "pruned", "kv_tokens", "kv_tokens_rebase",
                                             "cached_tokens", "prompt_tokens", "generate_s", "ilp_ms")}
                      for s in x["steps"]]}


async def run_items(args, items, done, items_path: Path, key: str) -> None:
    from junto.answers import is_correct
    from junto.pool.client import PoolClient
    from junto.reasoning import RunContext, run_strategy

    with local_pool([POLICY], POLICY) as (pool, endpoints):
        async with PoolClient(pool, endpoints) as client:
            with items_path.open("a") as out:
                for no, (line, row) in enumerate(items):
                    for arm in args.arms:
                        if (line + 1, arm) in done:
                            continue
                        name, params = arm_params(arm, args)
                        ctx = RunContext(client=client, pool=pool, candidates=[POLICY])
                        msgs = [{"role": "user", "content": row["question"]}]
                        if name == "sc":
                            msgs = [{"role": "system", "content": arm_params("ets", args)[1]["system"]}, *msgs]
                        t = time.perf_counter()
                        r = await run_strategy(name, ctx, msgs, params)
                        wall = time.perf_counter() - t
                        rec = {"settings": key, "gsm8k_line": line + 1, "arm": arm, "gold": gsm8k_gold(row),
                               "answer": r.answer,
                               "correct": bool(r.answer) and is_correct(r.answer, gsm8k_gold(row), "number"),
                               "completion_tokens": r.usage.completion_tokens,
                               "prompt_tokens": r.usage.prompt_tokens, "wall_s": round(wall, 2),
                               **record(arm, r, wall)}
                        out.write(json.dumps(rec) + "\n")
                        out.flush()
                        done[(line + 1, arm)] = rec
                        print(f"[{no + 1}/{len(items)}] line {line + 1} {arm:7s} kv_peak {rec['kv_peak']:5d} · "
                              f"{r.usage.completion_tokens:5d} tok · {wall:7.1f}s · {r.answer!r} vs {gsm8k_gold(row)} "
                              f"{'✓' if rec['correct'] else '✗'}", flush=True)


def summarize(args, items, done) -> dict:
    lines = [line + 1 for line, _ in items]
    arms = {}
    for arm in args.arms:
        recs = [done[(ln, arm)] for ln in lines if (ln, arm) in done]
        arms[arm] = {"questions": len(recs), "accuracy": mean_se([float(r["correct"]) for r in recs]),
                     **{k: mean_se([r[k] for r in recs]) for k in ("kv_sum", "kv_peak", "kv_final",
                                                                   "completion_tokens", "wall_s")},
                     "per_item": [{k: r.get(k) for k in ("gsm8k_line", "answer", "gold", "correct", "wall_s",
                                                          "kv_peak", "kv_final", "completion_tokens", "depth",
                                                          "cached_tokens")} for r in recs]}
    ratio = None
    if "rebase" in arms and "ets" in arms and arms["ets"]["kv_sum"]["mean"]:
        ratio = round(arms["rebase"]["kv_sum"]["mean"] / arms["ets"]["kv_sum"]["mean"], 3)
    return {"dataset": "gsm8k/train.jsonl", "n": len(items), "seed": args.seed, "gsm8k_lines": lines,
            "policy": POLICY, "width": args.width, "max_depth": args.max_depth, "step_tokens": args.step_tokens,
            "scorer": args.scorer, "arms": arms, "kv_sum_rebase_over_ets": ratio,
            "note": "CPU llama.cpp (1 thread), servers shared with other work on this machine: wall times are noisy"}


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="questions (a seeded sample of GSM8K train)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--max-depth", type=int, default=6)
    ap.add_argument("--step-tokens", type=int, default=128)
    ap.add_argument("--scorer", default="arith", help="arith, or judge:<deployment>")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--items", type=Path, default=RESULTS / "ets-items.jsonl",
                    help="per-(question, arm) results, appended as they finish; a rerun resumes")
    ap.add_argument("--out", default="ets", help="result name (bench/results/<out>.json)")
    args = ap.parse_args()
    args.arms = [a for a in args.arms.split(",") if a]
    bad = [a for a in args.arms if a not in ARMS]
    if bad:
        ap.error(f"unknown arm(s) {bad}; choose from {', '.join(ARMS)}")
    items = gsm8k_subset(args.n, args.seed)
    key = settings_key(args)
    done = load_items(args.items, key)
    try:
        asyncio.run(run_items(args, items, done, args.items, key))
    finally:
        save(args.out, summarize(args, items, done))


if __name__ == "__main__":
    main()
