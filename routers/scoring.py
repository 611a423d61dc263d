"""Pure routing math over plain arrays: no I/O, no embedding, no model loading.

Shapes: ``scores`` is (n queries × M models) in [0, 1]; ``costs`` is (M,); ``labels`` (n,) are
cluster ids; a cluster table is (K clusters × M models).
"""

from __future__ import annotations

import numpy as np

#: FusionFactory's label presets (α, β): reward = α·normalized performance − β·normalized cost
FUSION_PRESETS: dict[str, tuple[float, float]] = {
    "performance": (1.0, 0.0),   # "Performance First"
    "balance": (0.5, 0.5),       # "Balance"
    "cost": (0.2, 0.8),          # "Cost First"
}


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (shift by the max)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def cluster_means(labels: np.ndarray, scores: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster mean score of each model and the cluster sizes. Empty clusters get zeros."""
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    sums = np.zeros((n_clusters, scores.shape[1]))
    np.add.at(sums, labels, scores)
    counts = np.bincount(labels, minlength=n_clusters).astype(np.float64)
    means = np.divide(sums, counts[:, None], out=np.zeros_like(sums), where=counts[:, None] > 0)
    return means, counts


def ranks_desc(table: np.ndarray, costs: np.ndarray | None = None, tie_rank: np.ndarray | None = None) -> np.ndarray:
    """0-based rank of each model within each row, best (highest value) first.

    Without tie-breaks, ties keep model order (a stable sort), as Avengers' ``sorted(..., reverse=True)``
    does. With them, ties go to the lower ``costs`` (shape M, or K × M per row), then to the lower
    ``tie_rank`` (shape M: e.g. each model's rank by name), then to model order.
    """
    table = np.asarray(table, dtype=np.float64)
    if costs is None and tie_rank is None:
        order = np.argsort(-table, axis=1, kind="stable")
    else:
        shape = table.shape
        keys = [np.broadcast_to(np.arange(shape[1]), shape)]
        if tie_rank is not None:
            keys.append(np.broadcast_to(np.asarray(tie_rank), shape))
        if costs is not None:
            keys.append(np.broadcast_to(np.asarray(costs, dtype=np.float64), shape))
        keys.append(-table)
        order = np.lexsort(tuple(keys), axis=1)  # the last key sorts first
    ranks = np.empty_like(order)
    rows = np.arange(order.shape[0])[:, None]
    ranks[rows, order] = np.arange(order.shape[1])[None, :]
    return ranks


def cluster_cost_means(labels: np.ndarray, costs: np.ndarray, n_clusters: int) -> np.ndarray:
    """Mean realized cost of each model on each cluster's queries (K × M), ignoring unknown (NaN) costs.

    A (cluster, model) pair with no known cost there — an empty cluster, or records without usage —
    gets the model's mean over all queries. Every model must have at least one known cost.
    """
    labels = np.asarray(labels, dtype=np.int64)
    costs = np.asarray(costs, dtype=np.float64)
    known = np.isfinite(costs)
    sums = np.zeros((n_clusters, costs.shape[1]))
    counts = np.zeros((n_clusters, costs.shape[1]))
    np.add.at(sums, labels, np.where(known, costs, 0.0))
    np.add.at(counts, labels, known.astype(np.float64))
    overall = np.where(known, costs, 0.0).sum(axis=0) / np.maximum(known.sum(axis=0), 1)
    return np.divide(sums, counts, out=np.broadcast_to(overall, sums.shape).copy(), where=counts > 0)


def balance_table(acc: np.ndarray, costs: np.ndarray, alpha: float) -> np.ndarray:
    """Avengers-Pro performance–efficiency score per cluster and model (K × M).

    ``acc`` is each model's mean score on each cluster's queries (K × M); ``costs`` is each model's
    cost, either one per model (M: a price table, the same in every cluster) or per cluster (K × M:
    the mean realized cost on the cluster's queries). Within each cluster (row):

    * performance is min–max normalized: (acc − min) / (max − min), so the cluster's best model gets 1
      and its worst 0; when every model scores the same, all get 1 (as in the reference code);
    * cost is divided by the cluster's largest cost, not min–max normalized: cost score
      1 − cost / max_cost, so the dearest model gets 0 and a model costing a tenth of it 0.9; when
      every cost is 0, all get 1;
    * x = α · performance + (1 − α) · cost score.
    """
    acc = np.asarray(acc, dtype=np.float64)
    costs = np.broadcast_to(np.asarray(costs, dtype=np.float64), acc.shape)
    lo = acc.min(axis=1, keepdims=True)
    span = acc.max(axis=1, keepdims=True) - lo
    norm_acc = np.divide(acc - lo, span, out=np.ones_like(acc), where=span > 0)
    max_cost = costs.max(axis=1, keepdims=True)
    cost_score = np.divide(costs, max_cost, out=np.zeros_like(costs), where=max_cost > 0)
    return alpha * norm_acc + (1.0 - alpha) * (1.0 - cost_score)


def rank_scores(dists: np.ndarray, cluster_ids: np.ndarray, ranks: np.ndarray, beta: float,
                rank_offset: float) -> tuple[np.ndarray, np.ndarray]:
    """The Avengers routing score for a batch of queries.

    dists, cluster_ids: (n × top_k) cosine distances to, and ids of, each query's nearest clusters.
    p = softmax(−β·d) over those clusters; score(m) = Σ_c p_c / (rank_c(m) + rank_offset).
    Returns (scores n × M, p n × top_k).
    """
    p = softmax(-beta * np.asarray(dists, dtype=np.float64), axis=1)
    inv = 1.0 / (ranks.astype(np.float64) + rank_offset)          # K × M
    scores = np.einsum("nk,nkm->nm", p, inv[np.asarray(cluster_ids)])
    return scores, p


def normalized_costs(costs: np.ndarray) -> np.ndarray:
    """Min-max costs to [0, 1] across models (all-equal costs → 0)."""
    costs = np.asarray(costs, dtype=np.float64)
    span = costs.max() - costs.min()
    return (costs - costs.min()) / span if span > 0 else np.zeros_like(costs)


def fusion_labels(scores: np.ndarray, costs: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """FusionFactory's reward per query and model: α·performance − β·normalized cost.

    Scores are already in [0, 1] (FusionFactory min-max-normalizes performance within a task,
    which is the identity for 0/1 metrics); costs are min-max normalized across models.
    """
    return alpha * np.asarray(scores, dtype=np.float64) - beta * normalized_costs(costs)[None, :]


# -- evaluation -------------------------------------------------------------------------------------

def gap_closed(router: float, best_single: float, oracle: float) -> float | None:
    """(router − best single) / (oracle − best single); None when the oracle is no better."""
    denom = oracle - best_single
    if denom <= 1e-12:
        return None
    return (router - best_single) / denom


def evaluate_choices(chosen: np.ndarray, scores: np.ndarray, costs: np.ndarray, best_single: int) -> dict:
    """Accuracy and cost of routed choices beside random, best single (fixed index) and oracle."""
    scores = np.asarray(scores, dtype=np.float64)
    costs = np.asarray(costs, dtype=np.float64)
    n = scores.shape[0]
    rows = np.arange(n)
    acc = float(scores[rows, chosen].mean()) if n else float("nan")
    best = float(scores[:, best_single].mean()) if n else float("nan")
    oracle_scores = scores.max(axis=1)
    # the oracle picks the cheapest model among those with the best score on each query
    masked = np.where(scores >= oracle_scores[:, None] - 1e-12, costs[None, :], np.inf)
    oracle_cost = float(costs[masked.argmin(axis=1)].mean()) if n else float("nan")
    oracle = float(oracle_scores.mean()) if n else float("nan")
    return {
        "n": int(n),
        "accuracy": acc,
        "avg_cost": float(costs[chosen].mean()) if n else float("nan"),
        "random": float(scores.mean()) if n else float("nan"),
        "random_cost": float(costs.mean()),
        "best_single": best,
        "best_single_cost": float(costs[best_single]),
        "oracle": oracle,
        "oracle_cost": oracle_cost,
        "gap_closed": gap_closed(acc, best, oracle),
    }


def best_single_index(scores: np.ndarray, costs: np.ndarray) -> int:
    """The model with the highest mean score; ties go to the cheaper one."""
    means = np.asarray(scores, dtype=np.float64).mean(axis=0)
    order = sorted(range(len(means)), key=lambda i: (-round(float(means[i]), 12), float(costs[i]), i))
    return order[0]


def upper_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-decreasing upper convex hull of (cost, quality) points, cheapest first."""
    pts = sorted(set(points))
    # keep only points that improve quality as cost grows (Pareto front)
    front: list[tuple[float, float]] = []
    for c, q in pts:
        if front and c == front[-1][0]:
            if q > front[-1][1]:
                front[-1] = (c, q)
            continue
        if not front or q > front[-1][1]:
            front.append((c, q))
    hull: list[tuple[float, float]] = []
    for p in front:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # drop the middle point when it lies on or below the chord: keeps the hull concave
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def aiq(points: list[tuple[float, float]], c_min: float, c_max: float) -> float:
    """RouterBench's AIQ: the area under the router's non-decreasing convex hull, over [c_min, c_max],
    divided by (c_max − c_min). Quality is 0 below the router's cheapest point and flat beyond its
    dearest one.
    """
    hull = upper_hull(points)
    if not hull or c_max <= c_min:
        return float("nan")
    xs = np.array([p[0] for p in hull])
    ys = np.array([p[1] for p in hull])
    grid = np.linspace(c_min, c_max, 2001)
    vals = np.interp(grid, xs, ys, left=0.0, right=ys[-1])
    vals[grid < xs[0]] = 0.0
    return float(np.trapezoid(vals, grid) / (c_max - c_min))
