"""Reasoning strategies on the embedded pool: accuracy vs samples, early stopping, graph overhead.

    python bench/bench_reasoning.py [--n 30] [--max-tokens 16] [--k 16] [--live-k 10] [--overhead-rounds 300]

Part 1 (real model: SmolLM2-135M on llama.cpp, configs/datasets/arith-easy.jsonl):
  * greedy: ``direct`` at temperature 0;
  * 16 samples per question at T=0.7 drawn once through the ``sc`` graph (no early stopping,
    seeded), then sc@k for every k ≤ 16 scored on prefixes of those same samples (so the curves are
    paired, not noise between runs), plus the expected accuracy of one sample;
  * early stopping on the same samples: ``unbeatable`` (provably the same answer as all k) and
    ``beta`` (Adaptive-Consistency, 0.95): accuracy and samples saved;
  * a live ``sc`` run at k=``--live-k`` with ``unbeatable`` stopping: real samples and wall time,
    against the recorded per-sample time × k for the run without stopping.
Part 2 (overhead; bench/stub_server.py on loopback so only junto is measured): per request, the
graph (``direct``; ``sc`` with 5 samples as one n=5 request and as 5 fanned-out ``Send``s)
against the same raw PoolClient calls, interleaved; ratio and added ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import save, summary_ms  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT / "configs" / "datasets" / "arith-easy.jsonl"


def rows(n: int) -> list[dict]:
    return [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()][:n]


async def accuracy_part(args) -> dict:
    from junto.paths import state_dir
    from junto.pool.client import PoolClient
    from junto.pool.config import load_pool
    from junto.pool.launcher import Launcher
    from junto.reasoning import RunContext, run_strategy
    from junto.answers import canonical, extract, is_correct
    from junto.reasoning.replay import replay_sc

    data = rows(args.n)
    pool = load_pool("embedded")
    launcher = Launcher(pool, state_dir())
    endpoints, started = launcher.up()
    out: dict = {"questions": len(data), "max_tokens": args.max_tokens, "temperature": 0.7, "k": args.k,
                 "model": pool.default_deployment.name, "dataset": str(DATASET.relative_to(ROOT))}
    try:
        async with PoolClient(pool, endpoints) as client:
            ctx = RunContext(client=client, pool=pool, candidates=[pool.default_deployment.name], max_samples=None,
                             max_tokens=args.max_tokens, deadline_s=None)

            def msgs(row):
                return [{"role": "user", "content": row["question"]}]

            # greedy
            t0 = time.perf_counter()
            greedy = []
            for row in data:
                r = await run_strategy("direct", ctx, msgs(row), {"temperature": 0.0, "seed": 0})
                greedy.append(is_correct(canonical(extract(r.text, "number"), "number"), row["answer"], "number"))
            out["greedy"] = {"accuracy": round(sum(greedy) / len(data), 4), "wall_s": round(time.perf_counter() - t0, 2)}
            print(f"greedy accuracy {out['greedy']['accuracy']:.3f}", flush=True)

            # k samples per question, recorded once through the sc graph
            t0 = time.perf_counter()
            recorded, sample_time, tokens = [], [], 0
            for i, row in enumerate(data):
                r = await run_strategy("sc", ctx, msgs(row), {"samples": args.k, "early_stop": "none", "seed": 1000 * i,
                                                              "temperature": 0.7, "answer": "number"})
                recorded.append(r.extra["answers"])
                sample_time.append(r.latency_s / r.samples)
                tokens += r.usage.completion_tokens
            rec_wall = time.perf_counter() - t0
            per_sample_s = statistics.fmean(sample_time)
            out["recording"] = {"samples": args.k * len(data), "wall_s": round(rec_wall, 2),
                                "seconds_per_sample": round(per_sample_s, 4),
                                "completion_tokens_per_sample": round(tokens / (args.k * len(data)), 2)}
            print(f"recorded {args.k} samples x {len(data)} questions in {rec_wall:.0f}s", flush=True)

            refs = [row["answer"] for row in data]

            def acc(answers):
                return round(sum(is_correct(a, ref, "number") for a, ref in zip(answers, refs)) / len(refs), 4)

            one = [statistics.fmean(is_correct(a, ref, "number") for a in keys) for keys, ref in zip(recorded, refs)]
            out["one_sample"] = {"accuracy_first": acc([keys[0] for keys in recorded]),
                                 "accuracy_expected": round(statistics.fmean(one), 4)}
            curve = {}
            for k in range(1, args.k + 1):
                curve[k] = acc([replay_sc(keys, k).answer for keys in recorded])
            out["sc_curve"] = curve
            out["sc_at"] = {f"sc@{k}": curve[k] for k in (5, 10, 16) if k in curve}
            g = out["greedy"]["accuracy"]
            out["crossing_k"] = next((k for k, a in curve.items() if a >= g), None)
            out["crossing_note"] = ("smallest k with sc@k ≥ greedy" if out["crossing_k"] is not None
                                    else f"sc@k stays below greedy up to k={args.k}")

            early = {}
            for k in (5, 10, 16):
                if k > args.k:
                    continue
                for rule in ("unbeatable", "beta"):
                    res = [replay_sc(keys, k, rule) for keys in recorded]
                    used = sum(r.samples for r in res)
                    early[f"sc@{k}/{rule}"] = {"accuracy": acc([r.answer for r in res]),
                                               "accuracy_without_stopping": curve[k],
                                               "samples": used, "samples_budget": k * len(data),
                                               "samples_saved": k * len(data) - used,
                                               "saved_fraction": round(1 - used / (k * len(data)), 4)}
            out["early_stopping_replayed"] = early

            # the live graph with early stopping: real samples saved, real seconds saved
            if args.live_k:
                t0 = time.perf_counter()
                live_samples, live_answers, agree = 0, [], 0
                for i, row in enumerate(data):
                    r = await run_strategy("sc", ctx, msgs(row), {"samples": args.live_k, "early_stop": "unbeatable",
                                                                  "seed": 1000 * i, "temperature": 0.7,
                                                                  "answer": "number"})
                    live_samples += r.samples
                    live_answers.append(r.answer or None)
                    agree += (r.answer or None) == replay_sc(recorded[i], args.live_k).answer
                wall = time.perf_counter() - t0
                full = per_sample_s * args.live_k * len(data)
                out["early_stopping_live"] = {
                    "k": args.live_k, "rule": "unbeatable", "accuracy": acc(live_answers),
                    "samples": live_samples, "samples_budget": args.live_k * len(data),
                    "samples_saved": args.live_k * len(data) - live_samples, "wall_s": round(wall, 2),
                    "estimated_wall_without_stopping_s": round(full, 2),
                    "time_saved_fraction": round(1 - wall / full, 4) if full else None,
                    "answers_equal_to_full_vote_on_recorded_samples": f"{agree}/{len(data)}"}
    finally:
        launcher.down(started)
    return out


async def overhead_part(rounds: int) -> dict:
    from helpers import stub_server

    from junto.pool.client import PoolClient
    from junto.pool.config import parse_pool
    from junto.pool.types import StreamEnd
    from junto.reasoning import RunContext, run_strategy

    msgs = [{"role": "user", "content": "What is 2 + 2?"}]
    with stub_server(tokens=8) as (url, _):
        pool = parse_pool({"name": "bench", "deployments": [
            {"name": "native", "backend": "openai", "model": "stub", "url": url, "max_concurrency": 8},
            # llama.cpp-like: the client sends one request per sample (the graph fans out with Send)
            {"name": "fanout", "backend": "llamacpp", "model": "stub", "url": url, "max_concurrency": 8}]})
        async with PoolClient(pool) as client:
            def ctx(name):
                return RunContext(client=client, pool=pool, candidates=[name], max_samples=None, max_tokens=8,
                                  deadline_s=None)

            async def raw_direct():
                async for ev in client.stream("native", msgs, max_tokens=8):
                    if isinstance(ev, StreamEnd):
                        return

            async def graph_direct():
                await run_strategy("direct", ctx("native"), msgs, {})

            async def raw_n5():
                await client.chat("native", msgs, n=5, max_tokens=8, temperature=0.7)

            async def graph_sc_n5():
                await run_strategy("sc", ctx("native"), msgs, {"samples": 5, "early_stop": "none"})

            async def raw_fan5():
                await client.chat("fanout", msgs, n=5, max_tokens=8, temperature=0.7)

            async def graph_sc_fan5():
                await run_strategy("sc", ctx("fanout"), msgs, {"samples": 5, "early_stop": "none"})

            paths = {"raw_stream": raw_direct, "graph_direct": graph_direct, "raw_chat_n5": raw_n5,
                     "graph_sc5_native_n": graph_sc_n5, "raw_chat_fanout5": raw_fan5, "graph_sc5_send_fanout": graph_sc_fan5}
            times: dict[str, list[float]] = {k: [] for k in paths}
            for i in range(rounds + 20):
                for name, fn in paths.items():
                    t0 = time.perf_counter()
                    await fn()
                    if i >= 20:  # warm-up rounds not kept
                        times[name].append(time.perf_counter() - t0)
    out = {"rounds": rounds, "paths": {k: summary_ms(v) for k, v in times.items()}}
    for graph, raw in (("graph_direct", "raw_stream"), ("graph_sc5_native_n", "raw_chat_n5"),
                       ("graph_sc5_send_fanout", "raw_chat_fanout5")):
        g, r = statistics.median(times[graph]), statistics.median(times[raw])
        out[f"{graph}_vs_{raw}"] = {"ratio_p50": round(g / r, 3), "added_ms_p50": round((g - r) * 1000, 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="questions")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--k", type=int, default=16, help="samples recorded per question")
    ap.add_argument("--live-k", type=int, default=10, help="k of the live early-stopping run (0: skip)")
    ap.add_argument("--overhead-rounds", type=int, default=300)
    ap.add_argument("--skip-model", action="store_true", help="only the overhead part")
    args = ap.parse_args()
    results: dict = {}
    t0 = time.perf_counter()
    results["overhead_stub"] = asyncio.run(overhead_part(args.overhead_rounds))
    print(json.dumps(results["overhead_stub"], indent=1), flush=True)
    if not args.skip_model:
        results["embedded"] = asyncio.run(accuracy_part(args))
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    save("reasoning", results)


if __name__ == "__main__":
    main()
