"""Step scorers (junto.reasoning.ets.scorers) on BIG-Bench Mistake: can they find the first wrong step?

    python bench/bench_scorers.py [--scorers arith,judge:qwen2.5-coder-0.5b] [--judge-traces 12] [--seed 0]
                                  [--cache bench/results/scorers-cache.jsonl]

Data: ../shared/data/step-mistakes/ (BIG-Bench Mistake, Apache-2.0, its LICENSE travels with it; chain-of-thought
traces by PaLM 2 with the first wrong step labelled by people). Per trace, the steps scored are those up to and
including the first mistake (every step of a trace without one); a step's label is 1 when it is correct. A step
is scored with the steps before it as its context, as the tree search scores a new node.

Each task's traces are split once, seeded, into a train fold and a held-out fold of equal size. Reported per task
and over all tasks, on the held-out fold:

* step AUROC (sklearn's roc_auc_score; label = step correct, score = P(correct)), standard error from 500
  bootstrap resamples of traces;
* first-mistake accuracy: the prediction is the first step whose score is below τ, or "no mistake" when none is;
  it is right when it names the labelled step, or "no mistake" on a trace without one. τ is the threshold that
  maximises accuracy on the train fold; binomial standard error on the held-out fold.

Beside two trivial baselines: ``always-correct`` (every step scores 1: it always says "no mistake"; AUROC 0.5)
and ``position`` (P(correct) of a step at position k, fitted on the train fold: later steps are more often wrong).

``arith`` runs on every trace. It abstains (scores the neutral prior 0.5) on a step that claims no arithmetic —
almost every step of the non-arithmetic tasks; abstentions tie with each other in the AUROC (counted as half a
correct ranking) and are never below a τ under 0.5, so an abstaining step is never predicted to be the mistake at
such a τ. Its coverage (steps it did not abstain on) and its AUROC over those steps alone are reported too.
``judge:<deployment>`` (an LLM of the local pool: P(Yes) of one verdict token; ``judge:<deployment>@task+task``
for some tasks only) runs on a seeded subset of ``--judge-traces`` traces per task and fold (CPU: about a second or two a step). Every score is appended to the
cache as it is computed, so a rerun resumes; the summary goes to bench/results/scorers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, local_pool, save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "step-mistakes"
TASKS = ("multistep_arithmetic", "word_sorting", "tracking_shuffled_objects", "dyck_languages")
BOOT = 500


def load(task: str) -> list[dict]:
    from junto.jsonl import read_jsonl

    return [row for _, row in read_jsonl(DATA / f"{task}.jsonl", required=("input", "steps", "mistake_index"))]


def scored_steps(trace: dict) -> list[tuple[int, int]]:
    """(step index, label) for the steps up to and including the first mistake."""
    m = trace["mistake_index"]
    last = len(trace["steps"]) - 1 if m is None else m
    return [(k, int(m is None or k < m)) for k in range(last + 1)]


def split(n: int, seed: int, task: str) -> tuple[list[int], list[int]]:
    idx = list(range(n))
    random.Random(f"{seed}:{task}").shuffle(idx)
    return sorted(idx[: n // 2]), sorted(idx[n // 2:])


# -- metrics (pure) -------------------------------------------------------------------------------------


def auroc(labels: list[int], scores: list[float]) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(set(labels)) < 2:
        return None
    return float(roc_auc_score(labels, scores))


def auroc_se(traces: list[list[tuple[int, float]]], seed: int) -> float | None:
    """Bootstrap SE of the AUROC, resampling traces (steps of one trace are not independent)."""
    rng = random.Random(seed)
    vals = []
    for _ in range(BOOT):
        sample = [traces[rng.randrange(len(traces))] for _ in traces]
        a = auroc([lab for t in sample for lab, _ in t], [s for t in sample for _, s in t])
        if a is not None:
            vals.append(a)
    if len(vals) < 2:
        return None
    mean = sum(vals) / len(vals)
    return math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))


def predict_first(scores: list[float], tau: float) -> int | None:
    for k, s in enumerate(scores):
        if s < tau:
            return k
    return None


def first_mistake_acc(items: list[tuple[list[float], int | None]], tau: float) -> float:
    return sum(predict_first(s, tau) == m for s, m in items) / len(items) if items else float("nan")


def tune_tau(items: list[tuple[list[float], int | None]]) -> float:
    """The τ maximising train accuracy (candidates: midpoints of the distinct scores, and 0 = never flag)."""
    vals = sorted({s for sc, _ in items for s in sc})
    cands = [0.0] + [(a + b) / 2 for a, b in zip(vals, vals[1:])] + ([vals[-1] + 1e-9] if vals else [])
    best = max(cands, key=lambda t: (first_mistake_acc(items, t), -t))
    return best


def binom_se(p: float, n: int) -> float | None:
    return math.sqrt(p * (1 - p) / n) if n else None


# -- scoring ----------------------------------------------------------------------------------------------


class Cache:
    def __init__(self, path: Path):
        self.path = path
        self.data: dict[tuple, float] = {}
        #: seconds per step of each cached score, by scorer (a batch's time shared among its steps)
        self.seconds: dict[str, list] = {}
        if path.exists():
            from junto.jsonl import read_jsonl

            for _, r in read_jsonl(path, required=("scorer", "task", "trace", "step", "score"), allow_empty=True):
                self.data[(r["scorer"], r["task"], r["trace"], r["step"])] = r["score"]
                self.seconds[r["scorer"]] = self.seconds.get(r["scorer"], []) + [r.get("seconds")]
        self.fh = None

    def get(self, key: tuple) -> float | None:
        return self.data.get(key)

    def put(self, key: tuple, score: float, seconds: float) -> None:
        if self.fh is None:
            self.fh = self.path.open("a")
        self.data[key] = score
        self.fh.write(json.dumps({"scorer": key[0], "task": key[1], "trace": key[2], "step": key[3],
                                  "score": score, "seconds": round(seconds, 3)}) + "\n")
        self.fh.flush()


async def score_traces(scorer, name: str, task: str, traces: list[dict], ids: list[int], cache: Cache,
                       persist: bool, log_every: int = 0) -> dict[int, list[float]]:
    """Scores of the scored steps of traces ``ids`` (one batch per trace: its steps, each with its prefix)."""
    out: dict[int, list[float]] = {}
    t_all, n_new = time.perf_counter(), 0
    for no, i in enumerate(ids):
        tr = traces[i]
        ks = [k for k, _ in scored_steps(tr)]
        missing = [k for k in ks if cache.get((name, task, i, k)) is None]
        if missing:
            t = time.perf_counter()
            got = await scorer.score(tr["input"], [tr["steps"][: k + 1] for k in missing])
            dt = (time.perf_counter() - t) / len(missing)
            for k, s in zip(missing, got):
                if persist:
                    cache.put((name, task, i, k), s, dt)
                else:
                    cache.data[(name, task, i, k)] = s
            n_new += len(missing)
            if log_every and (no + 1) % log_every == 0:
                el = time.perf_counter() - t_all
                print(f"  {name} {task}: {no + 1}/{len(ids)} traces, {n_new} new steps, "
                      f"{el / max(n_new, 1):.2f} s/step", flush=True)
        out[i] = [cache.get((name, task, i, k)) for k in ks]
    return out


def evaluate(task_data: dict[str, tuple[list[dict], list[int], list[int]]],
             scores: dict[str, dict[int, list[float]]], seed: int, abstain: float | None = None) -> dict:
    """Metrics per task and overall from per-trace scores (held-out fold; τ tuned on the train fold)."""
    res = {}
    pooled_train, pooled_test = [], []
    for task, (traces, train, test) in task_data.items():
        tr_items = [(scores[task][i], traces[i]["mistake_index"]) for i in train if i in scores[task]]
        te_items = [(scores[task][i], traces[i]["mistake_index"]) for i in test if i in scores[task]]
        te_steps = [[(lab, scores[task][i][j]) for j, (_, lab) in enumerate(scored_steps(traces[i]))]
                    for i in test if i in scores[task]]
        res[task] = metrics(tr_items, te_items, te_steps, seed, abstain)
        pooled_train += tr_items
        pooled_test.append((tr_items, te_items, te_steps))
    # overall: τ tuned per task on its train fold (the tasks' scores are not on one scale for every scorer)
    all_items, all_steps, correct = [], [], 0
    for task, (tr_items, te_items, te_steps) in zip(task_data, pooled_test):
        tau = tune_tau(tr_items) if tr_items else 0.5
        correct += sum(predict_first(s, tau) == m for s, m in te_items)
        all_items += te_items
        all_steps += te_steps
    overall = metrics(pooled_train, all_items, all_steps, seed, abstain)
    n = len(all_items)
    overall["first_mistake_acc_per_task_tau"] = round(correct / n, 4) if n else None
    overall["first_mistake_acc_per_task_tau_se"] = round(binom_se(correct / n, n), 4) if n else None
    res["overall"] = overall
    return res


def metrics(tr_items, te_items, te_steps, seed: int, abstain: float | None) -> dict:
    labels = [lab for t in te_steps for lab, _ in t]
    sc = [s for t in te_steps for _, s in t]
    a = auroc(labels, sc)
    tau = tune_tau(tr_items) if tr_items else 0.5
    acc = first_mistake_acc(te_items, tau) if te_items else None
    out = {"traces_test": len(te_items), "traces_train": len(tr_items), "steps_test": len(labels),
           "wrong_steps_test": labels.count(0),
           "auroc": None if a is None else round(a, 4),
           "auroc_se": None if a is None else (lambda v: None if v is None else round(v, 4))(auroc_se(te_steps, seed)),
           "tau": round(tau, 4), "first_mistake_acc": None if acc is None else round(acc, 4),
           "first_mistake_acc_se": None if acc is None else round(binom_se(acc, len(te_items)), 4)}
    if te_items:
        for tag, part in (("with_mistake", [x for x in te_items if x[1] is not None]),
                          ("no_mistake", [x for x in te_items if x[1] is None])):
            out[f"first_mistake_acc_{tag}"] = round(first_mistake_acc(part, tau), 4) if part else None
            out[f"traces_test_{tag}"] = len(part)
    if abstain is not None:
        kept = [(lab, s) for lab, s in zip(labels, sc) if s != abstain]
        out["coverage"] = round(len(kept) / len(labels), 4) if labels else None
        ak = auroc([lab for lab, _ in kept], [s for _, s in kept])
        out["auroc_non_abstained"] = None if ak is None else round(ak, 4)
        out["non_abstained_steps"] = len(kept)
    return out


def position_prior(task_data) -> dict[str, dict[int, list[float]]]:
    """P(step correct | position), fitted per task on the train fold (Laplace-smoothed; positions past the
    longest seen share the last estimate)."""
    out = {}
    for task, (traces, train, test) in task_data.items():
        counts: dict[int, list[int]] = {}
        for i in train:
            for k, lab in scored_steps(traces[i]):
                c = counts.setdefault(k, [0, 0])
                c[0] += lab
                c[1] += 1
        top = max(counts)
        prior = {k: (c[0] + 1) / (c[1] + 2) for k, c in counts.items()}
        out[task] = {i: [prior[min(k, top)] for k, _ in scored_steps(traces[i])] for i in range(len(traces))}
    return out


async def judge_run(args, task_data, cache: Cache, dep_name: str) -> dict[str, dict[int, list[float]]]:
    from junto.pool.client import PoolClient
    from junto.reasoning.ets.scorers import make_scorer

    # a private state directory: this run starts (and stops) its own server, never one another run may stop
    state = Path(tempfile.mkdtemp(prefix="junto-bench-scorers-"))
    out = {}
    try:
        with local_pool([dep_name], dep_name, state) as (pool, endpoints):
            async with PoolClient(pool, endpoints) as client:
                scorer = make_scorer({"kind": "judge", "deployment": dep_name}, client, pool)
                for task, (traces, train, test) in task_data.items():
                    ids = subset(train, args.judge_traces, args.seed, task) + subset(test, args.judge_traces, args.seed,
                                                                                      task + "/test")
                    out[task] = await score_traces(scorer, f"judge:{dep_name}", task, traces, ids, cache, True,
                                                   log_every=4)
                print(f"  judge undecided verdicts this run: {scorer.undecided}", flush=True)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return out


def subset(ids: list[int], n: int, seed: int, tag: str) -> list[int]:
    ids = list(ids)
    random.Random(f"{seed}:{tag}:subset").shuffle(ids)
    return sorted(ids[:n])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scorers", default="arith,judge:qwen2.5-coder-0.5b")
    ap.add_argument("--judge-traces", type=int, default=12, help="traces per task and fold for judge scorers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=str(RESULTS / "scorers-cache.jsonl"))
    args = ap.parse_args()

    from junto.reasoning.ets.scorers import ScorerSpec, make_scorer

    task_data = {}
    for task in TASKS:
        traces = load(task)
        train, test = split(len(traces), args.seed, task)
        task_data[task] = (traces, train, test)
    cache = Cache(Path(args.cache))
    results: dict = {"data": {t: {"traces": len(d[0]), "train": len(d[1]), "test": len(d[2]),
                                  "with_mistake": sum(tr["mistake_index"] is not None for tr in d[0])}
                              for t, d in task_data.items()},
                     "seed": args.seed, "scorers": {}}

    # baselines: always-correct, position prior
    ones = {t: {i: [1.0] * len(scored_steps(tr)) for i, tr in enumerate(d[0])} for t, d in task_data.items()}
    results["scorers"]["always-correct"] = evaluate(task_data, ones, args.seed)
    results["scorers"]["position"] = evaluate(task_data, position_prior(task_data), args.seed)

    for name in args.scorers.split(","):
        t0 = time.perf_counter()
        if name == "arith":
            spec = ScorerSpec(kind="arith")
            scorer = make_scorer(spec, None, None)
            scores = {t: asyncio.run(score_traces(scorer, "arith", t, d[0], list(range(len(d[0]))), cache, False))
                      for t, d in task_data.items()}
            res = evaluate(task_data, scores, args.seed, abstain=spec.abstain)
            n = sum(len(scored_steps(tr)) for d in task_data.values() for tr in d[0])
            res["seconds_per_step"] = round((time.perf_counter() - t0) / n, 6)
        elif name.startswith("judge:"):
            dep_name, _, only = name.split(":", 1)[1].partition("@")
            tasks = only.split("+") if only else list(TASKS)
            if unknown := [t for t in tasks if t not in TASKS]:
                raise SystemExit(f"unknown task(s) {unknown}: tasks are {', '.join(TASKS)}")
            td = {t: task_data[t] for t in tasks}
            scores = asyncio.run(judge_run(args, td, cache, dep_name))
            res = evaluate(td, scores, args.seed)
            secs = [x for x in Cache(Path(args.cache)).seconds.get(f"judge:{dep_name}", []) if x is not None]
            res["seconds_per_step"] = round(sum(secs) / len(secs), 3) if secs else None
            res["subset"] = f"{args.judge_traces} traces per task and fold, seeded ({args.seed})"
            # the baselines on the same subset, for a like-for-like comparison
            sub = {t: set(s) for t, s in scores.items()}
            pos = position_prior(td)
            res["baselines_on_subset"] = {
                "always-correct": evaluate(td, {t: {i: v for i, v in ones[t].items() if i in sub[t]}
                                                for t in sub}, args.seed)["overall"],
                "position": evaluate(td, {t: {i: v for i, v in pos[t].items() if i in sub[t]}
                                          for t in sub}, args.seed)["overall"]}
        else:
            raise SystemExit(f"unknown scorer {name!r}: arith or judge:<deployment of the local pool>")
        results["scorers"][name] = res
        print(f"{name}: overall {json.dumps(res['overall'])}", flush=True)
    save("scorers", results)


if __name__ == "__main__":
    main()
