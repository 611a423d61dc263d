"""Routing over arms of the local pool: held-out accuracy and realized cost, beside every reference.

    python bench/bench_arms.py [--records configs/calibration/local.records.jsonl] [--folds 5]

Records: `junto route calibrate --pool local` over the stratified calibration set (configs/datasets/
local-calibration.jsonl), one score per (query, arm) and what each answer cost (tokens, latency, USD at
the pool's notional per-parameter prices). Task labels come from the dataset file. Folds: stratified by
task (shuffled, seed 42); every router is fit on the training folds only and scored on the held-out
fold, where each choice is charged the arm's *realized* cost on that very query.

References on the same folds: random (the mean over arms), every single arm, the best single arm
(chosen on the training folds), the per-task best arm (task label known, chosen on the training
folds) and the oracle (a best-scoring arm for each query, the cheapest among ties). Standard errors are
over folds (std / √folds). Targets (issue 10): the best router reaches the best single arm's accuracy at
≤ 50 % of its cost, and closes ≥ 30 % of the gap between the best single arm and the oracle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEED = 42
ALPHAS = [round(a, 2) for a in np.linspace(0, 1, 11)]


def load(records_path: Path, dataset_path: Path):
    from junto.routers.base import load_records

    records = load_records(records_path)
    task_of = {}
    for line in dataset_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            task_of[d["question"]] = d.get("task", "all")
    tasks = np.array([task_of.get(q, "unknown") for q in records.questions])
    if records.realized_costs is None:
        raise SystemExit(f"{records_path}: the records carry no realized costs (calibrate with this junto)")
    cost = np.array(records.realized_costs, dtype=np.float64)
    # a missing cost (a resumed old line) is the arm's mean cost
    col_mean = np.nanmean(cost, axis=0)
    cost = np.where(np.isnan(cost), col_mean[None, :], cost)
    return records, tasks, cost


def pick(train_scores, train_cost, rows_mask=None):
    """The arm with the best training accuracy; ties go to the cheaper arm."""
    s = train_scores if rows_mask is None else train_scores[rows_mask]
    c = train_cost if rows_mask is None else train_cost[rows_mask]
    acc, mc = s.mean(axis=0), c.mean(axis=0)
    return int(sorted(range(s.shape[1]), key=lambda j: (-acc[j], mc[j]))[0])


def charged(scores, cost, chosen):
    rows = np.arange(len(scores))
    return float(scores[rows, chosen].mean()), float(cost[rows, chosen].mean())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=Path, default=ROOT / "configs" / "calibration" / "local.records.jsonl")
    ap.add_argument("--dataset", type=Path, default=ROOT / "configs" / "datasets" / "local-calibration.jsonl")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--clusters", type=int, default=None, help="Avengers clusters (default: the router's)")
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    from sklearn.model_selection import StratifiedKFold

    from junto.routers.base import router_class
    from junto.routers.embeddings import embed, get_embedder
    from junto.routers.scoring import gap_closed

    records, tasks, cost = load(args.records, args.dataset)
    arms = records.models
    n, k = records.scores.shape
    emb = embed(records.questions, get_embedder(args.embedder))
    # the routers' own cost table: each arm's mean realized cost (Avengers-Pro uses per-cluster realized cost)
    mean_costs = {m: float(cost[:, j].mean()) for j, m in enumerate(arms)}
    counts = {t: int((tasks == t).sum()) for t in np.unique(tasks)}
    n_splits = max(2, min(args.folds, min(counts.values())))
    skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=SEED)
    folds = list(skf.split(np.zeros(n), tasks))
    cfg_extra = {"n_clusters": args.clusters} if args.clusters else {}
    routers = [("avengers", dict(cfg_extra)), ("avengers-pro", dict(cfg_extra)), ("knn", {}), ("mlp", {}), ("svm", {})]
    per_fold: dict[str, dict[str, list[float]]] = {}
    sweep: dict[float, list[tuple[float, float]]] = {}

    def add(name, acc_cost):
        d = per_fold.setdefault(name, {"accuracy": [], "avg_cost": []})
        d["accuracy"].append(acc_cost[0])
        d["avg_cost"].append(acc_cost[1])

    for tr, te in folds:
        s_tr, s_te, c_tr, c_te = records.scores[tr], records.scores[te], cost[tr], cost[te]
        rows = np.arange(len(te))
        add("random", (float(s_te.mean()), float(c_te.mean())))
        for j, m in enumerate(arms):
            add(f"arm:{m}", (float(s_te[:, j].mean()), float(c_te[:, j].mean())))
        best = pick(s_tr, c_tr)
        add("best_single", charged(s_te, c_te, np.full(len(te), best)))
        per_task = np.array([pick(s_tr, c_tr, tasks[tr] == t) if (tasks[tr] == t).any() else best for t in tasks[te]])
        add("per_task_best", charged(s_te, c_te, per_task))
        top = s_te.max(axis=1)
        oracle = np.where(s_te >= top[:, None] - 1e-12, c_te, np.inf).argmin(axis=1)
        add("oracle", (float(top.mean()), float(c_te[rows, oracle].mean())))
        train = records.subset(tr)
        for method, cfg in routers:
            r = router_class(method).fit(train, emb[tr], mean_costs, embedder_spec={"kind": args.embedder},
                                         config=cfg)
            add(method, charged(s_te, c_te, r.choose_indices(emb[te])))
            if method == "avengers-pro":
                for a in ALPHAS:
                    sweep.setdefault(a, []).append(charged(s_te, c_te, r.with_alpha(a).choose_indices(emb[te])))

    def stats(d):
        acc, cst = np.array(d["accuracy"]), np.array(d["avg_cost"])
        return {"accuracy": round(float(acc.mean()), 4), "accuracy_se": round(float(acc.std(ddof=1) / np.sqrt(len(acc))), 4)
                if len(acc) > 1 else None, "avg_cost": round(float(cst.mean()), 8)}

    table = {name: stats(d) for name, d in per_fold.items()}
    best_acc, best_cost = table["best_single"]["accuracy"], table["best_single"]["avg_cost"]
    oracle_acc = table["oracle"]["accuracy"]
    for name, row in table.items():
        if name != "oracle":
            g = gap_closed(row["accuracy"], best_acc, oracle_acc)
            row["gap_closed"] = None if g is None else round(g, 4)
    curve = [{"alpha": a, "accuracy": round(float(np.mean([x for x, _ in v])), 4),
              "avg_cost": round(float(np.mean([c for _, c in v])), 8)} for a, v in sorted(sweep.items())]
    router_names = [m for m, _ in routers]
    candidates = [(table[m]["accuracy"], -table[m]["avg_cost"], m) for m in router_names]
    best_router = max(candidates)[2]
    cheap_enough = [p for p in curve if p["avg_cost"] <= 0.5 * best_cost] + \
        [{"router": m, **table[m]} for m in router_names if table[m]["avg_cost"] <= 0.5 * best_cost]
    targets = {
        "reaches_best_single_at_half_cost": {
            "best_single_accuracy": best_acc, "cost_cap": round(0.5 * best_cost, 8),
            "best_point_under_cap": max(cheap_enough, key=lambda p: p["accuracy"]) if cheap_enough else None,
            "met": any(p["accuracy"] >= best_acc for p in cheap_enough)},
        "closes_30pct_of_gap": {"router": best_router, "gap_closed": table[best_router].get("gap_closed"),
                                "met": (table[best_router].get("gap_closed") or 0) >= 0.3},
    }
    results = {"records": str(args.records.relative_to(ROOT) if args.records.is_relative_to(ROOT) else args.records),
               "n": n, "arms": arms, "tasks": counts, "folds": f"StratifiedKFold({n_splits}, shuffle, seed 42) by task",
               "embedder": args.embedder, "mean_realized_cost": mean_costs, "table": table,
               "avengers_pro_alpha_curve": curve, "targets": targets,
               "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}
    plot = plot_tradeoff(table, curve, arms)
    if plot:
        results["plot"] = str(plot.relative_to(ROOT))
    for name, row in sorted(table.items(), key=lambda kv: -kv[1]["accuracy"]):
        print(f"{name:32s} acc {row['accuracy']:.3f} ± {row['accuracy_se'] or 0:.3f}  cost {row['avg_cost']:.3g}"
              f"  gap {row.get('gap_closed')}")
    print(json.dumps(targets, indent=1))
    save("arms_cv", results)
    return 0


def plot_tradeoff(table, curve, arms):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in arms:
        r = table[f"arm:{m}"]
        ax.scatter(r["avg_cost"], r["accuracy"], marker="s", color="grey")
        ax.annotate(m, (r["avg_cost"], r["accuracy"]), fontsize=7)
    for name, mk in (("best_single", "*"), ("per_task_best", "D"), ("oracle", "^"), ("random", "x"),
                     ("avengers", "o"), ("knn", "o"), ("mlp", "o"), ("svm", "o")):
        r = table[name]
        ax.scatter(r["avg_cost"], r["accuracy"], marker=mk, label=name)
    ax.plot([p["avg_cost"] for p in curve], [p["accuracy"] for p in curve], "-.", label="avengers-pro α sweep")
    ax.set_xlabel("mean realized cost per query (notional USD)")
    ax.set_ylabel("held-out accuracy")
    ax.legend(fontsize=7)
    ax.set_title("local pool: routing over arms")
    out = RESULTS / "arms_tradeoff.png"
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
