"""Avengers-Pro with realized cost: per-cluster mean cost from the records' usage, normalization, tie-breaks.

Every expected number below is worked out by hand from the module docstring's definitions:
perf = per-cluster min–max of mean scores, eff = 1 − cost / (the cluster's largest cost),
x = α·perf + (1 − α)·eff.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from junto.errors import ConfigError
from junto.routers import fit_router, load_router
from junto.routers.avengers import AvengersProRouter
from junto.routers.base import load_records, parse_records
from junto.routers.scoring import balance_table, cluster_cost_means, ranks_desc

SPEC = {"kind": "static"}

# two tight groups of unit vectors: K-means with K = 2 puts each group in its own cluster
X = [[1.0, 0.0, 0.0, 0.0], [0.96, 0.28, 0.0, 0.0]]
Y = [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.96, 0.28]]
EMB = np.array(X + Y, dtype=np.float32)
PRICE = {"a": 1.0, "b": 4.0}  # the configured table: b lists at four times a's price


def _records(with_usage: bool = True):
    """Cluster X: a always right but verbose (realized cost 12, 8 → mean 10); b right once, cheap (0.5, 1.5 → 1).
    Cluster Y: a right once and cheap (1, 1 → 1); b always right and dear (9, 11 → 10)."""
    rows = [  # (scores a, b), (costs a, b)
        ((1, 1), (12.0, 0.5)),
        ((1, 0), (8.0, 1.5)),
        ((1, 1), (1.0, 9.0)),
        ((0, 1), (1.0, 11.0)),
    ]
    items = []
    for i, ((sa, sb), (ca, cb)) in enumerate(rows):
        rec = {"question": f"q{i}", "scores": {"a": sa, "b": sb}}
        if with_usage:
            rec["usage"] = {"a": {"prompt_tokens": 10, "completion_tokens": 50, "latency_s": 0.5, "cost": ca},
                            "b": {"prompt_tokens": 10, "completion_tokens": 5, "latency_s": 0.1, "cost": cb}}
        items.append(rec)
    return parse_records(items)


def _fit(records, **cfg):
    config = {"n_clusters": 2, "top_k": 1, "alpha": 0.3, **cfg}
    return AvengersProRouter.fit(records, EMB, PRICE, embedder_spec=SPEC, config=config)


def _cluster_of(router, vec) -> int:
    return router.route_embeddings(np.array(vec, dtype=np.float32))[0].details["clusters"][0]["cluster"]


def test_realized_cost_changes_the_ranking_where_the_price_table_misleads():
    recs = _records()
    realized = _fit(recs)
    price = _fit(recs, cost_source="table")
    assert realized.meta["cost_source"] == "realized" and price.meta["cost_source"] == "table"
    cx, cy = _cluster_of(realized, X[0]), _cluster_of(realized, Y[0])
    assert cx != cy

    # per-cluster mean realized cost: X (a 10, b 1), Y (a 1, b 10)
    assert realized.cluster_costs[cx].tolist() == pytest.approx([10.0, 1.0])
    assert realized.cluster_costs[cy].tolist() == pytest.approx([1.0, 10.0])
    # X: acc a 1, b .5 → perf 1, 0; eff a 1 − 10/10 = 0, b 1 − 1/10 = .9 → x a .3, b .7·.9 = .63
    assert realized.table[cx].tolist() == pytest.approx([0.3, 0.63], abs=1e-6)
    # Y: acc a .5, b 1 → perf 0, 1; eff a .9, b 0 → x a .63, b .3
    assert realized.table[cy].tolist() == pytest.approx([0.63, 0.3], abs=1e-6)
    # price table (a 1, b 4) in both clusters: eff a .75, b 0 → X: a .3 + .525 = .825, b 0; Y: a .525, b .3
    assert price.table[_cluster_of(price, X[0])].tolist() == pytest.approx([0.825, 0.0], abs=1e-6)
    assert price.table[_cluster_of(price, Y[0])].tolist() == pytest.approx([0.525, 0.3], abs=1e-6)

    d_real = realized.route_embeddings(np.array(X[0], dtype=np.float32))[0]
    d_price = price.route_embeddings(np.array(X[0], dtype=np.float32))[0]
    assert d_real.ranked == [("b", 1.0), ("a", 0.5)]  # top_k 1, rank score 1/(rank + 1)
    assert d_price.chosen == "a"
    # where the table and the realized costs agree, so do the routers
    assert realized.route_embeddings(np.array(Y[0], dtype=np.float32))[0].chosen == "a"
    assert price.route_embeddings(np.array(Y[0], dtype=np.float32))[0].chosen == "a"
    # per cluster, not overall: both models cost 5.5 on average over all four queries, which would
    # leave eff 0 for both in X and send X's queries to a again
    assert recs.mean_realized_costs() == {"a": 5.5, "b": 5.5}


def test_records_without_usage_fall_back_to_the_price_table():
    recs = _records(with_usage=False)
    assert recs.realized_costs is None and not recs.has_realized_costs
    r = _fit(recs)
    assert r.meta["cost_source"] == "table"
    assert r.cluster_costs.tolist() == [[1.0, 4.0], [1.0, 4.0]]
    assert r.route_embeddings(np.array(X[0], dtype=np.float32))[0].chosen == "a"
    with pytest.raises(ConfigError, match="realized"):
        _fit(recs, cost_source="realized")


def test_a_cluster_without_known_costs_uses_the_models_overall_mean():
    labels = np.array([0, 0, 1])
    costs = np.array([[2.0, np.nan], [4.0, 6.0], [np.nan, np.nan]])
    # model 0: cluster 0 mean 3, cluster 1 nothing known → overall mean 3; model 1: 6 and 6
    assert cluster_cost_means(labels, costs, 3).tolist() == [[3.0, 6.0], [3.0, 6.0], [3.0, 6.0]]


def test_balance_table_per_cluster_costs_by_hand():
    acc = np.array([[0.2, 0.6, 1.0], [0.5, 0.5, 0.5]])
    costs = np.array([[10.0, 50.0, 100.0], [0.0, 0.0, 0.0]])
    t = balance_table(acc, costs, 0.5)
    # row 0: perf 0, .5, 1; eff 1 − c/100 = .9, .5, 0 → .45, .5, .5
    assert t[0].tolist() == pytest.approx([0.45, 0.5, 0.5])
    # row 1: everyone scores the same (perf 1) and nothing costs anything (eff 1)
    assert t[1].tolist() == [1.0, 1.0, 1.0]


def test_cluster_ties_go_to_the_cheaper_model_then_to_the_name():
    table = np.array([[0.5, 0.5, 0.5, 0.1]])
    names_rank = np.array([2, 0, 1, 3])  # models "zeta", "alpha", "mid", "omega"
    # costs decide first: "mid" is cheapest; "zeta" and "alpha" cost the same → "alpha" by name
    assert ranks_desc(table, np.array([2.0, 2.0, 1.0, 0.0]), names_rank).tolist() == [[2, 1, 0, 3]]
    # without tie-breaks the reference's stable order stays (plain Avengers)
    assert ranks_desc(table).tolist() == [[0, 1, 2, 3]]


def _one_cluster(scores: dict[str, list[int]], costs: dict[str, float], alpha: float) -> AvengersProRouter:
    n = len(next(iter(scores.values())))
    recs = parse_records([{"question": f"t{i}", "scores": {m: s[i] for m, s in scores.items()},
                           "usage": {m: {"cost": costs[m]} for m in scores}} for i in range(n)])
    emb = np.tile(np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32), (n, 1))
    return AvengersProRouter.fit(recs, emb, {m: 1.0 for m in scores}, embedder_spec=SPEC,
                                 config={"n_clusters": 1, "top_k": 1, "alpha": alpha})


def test_fitted_ties_cheaper_first_then_by_name():
    q = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    # equal score and equal cost: x = .7·1 + .3·0 for both → "alpha" before "zeta", though "zeta" comes first
    r = _one_cluster({"zeta": [1, 0], "alpha": [1, 0], "mid": [0, 0]}, {"zeta": 1.0, "alpha": 1.0, "mid": 1.0}, 0.7)
    assert r.table[0].tolist() == pytest.approx([0.7, 0.7, 0.0])
    assert [m for m, _ in r.route_embeddings(q)[0].ranked] == ["alpha", "zeta", "mid"]
    # α = 1: x is the normalized score alone, equal for "zeta" and "alpha"; "zeta" is cheaper here and wins
    r = _one_cluster({"zeta": [1, 0], "alpha": [1, 0], "mid": [0, 0]}, {"zeta": 1.0, "alpha": 2.0, "mid": 0.5}, 1.0)
    assert r.table[0].tolist() == [1.0, 1.0, 0.0]
    assert [m for m, _ in r.route_embeddings(q)[0].ranked] == ["zeta", "alpha", "mid"]


def test_final_score_ties_cheaper_first_then_by_name():
    # two clusters with opposite rankings, equally weighted (β = 0, top_k 2): a and b both score
    # .5/1 + .5/2 = .75, so the decision falls to cost, then name
    recs = parse_records([{"question": f"q{i}", "scores": {"b": sb, "a": sa}}
                          for i, (sa, sb) in enumerate([(1, 0), (1, 0), (0, 1), (0, 1)])])
    cfg = {"n_clusters": 2, "top_k": 2, "beta": 0.0, "alpha": 1.0}
    q = np.array(X[0], dtype=np.float32)
    same = AvengersProRouter.fit(recs, EMB, {"a": 1.0, "b": 1.0}, embedder_spec=SPEC, config=cfg)
    d = same.route_embeddings(q)[0]
    assert d.ranked == [("a", 0.75), ("b", 0.75)]  # records list b first; the name decides
    assert same.models[same.choose_indices(q[None, :])[0]] == "a"
    cheaper_b = AvengersProRouter.fit(recs, EMB, {"a": 2.0, "b": 1.0}, embedder_spec=SPEC, config=cfg)
    assert cheaper_b.route_embeddings(q)[0].ranked == [("b", 0.75), ("a", 0.75)]
    assert cheaper_b.models[cheaper_b.choose_indices(q[None, :])[0]] == "b"


def test_with_alpha_keeps_the_realized_cluster_costs():
    r = _fit(_records())
    again = r.with_alpha(0.3)
    assert np.allclose(again.table, r.table)
    perf_only = r.with_alpha(1.0)
    cx = _cluster_of(r, X[0])
    assert perf_only.table[cx].tolist() == [1.0, 0.0]


def test_an_artifact_from_before_realized_costs_loads_and_ranks_by_the_table(tmp_path):
    r = _fit(_records(with_usage=False))
    path = r.save(tmp_path / "old")
    meta = json.loads((path / "router.json").read_text())
    del meta["cost_source"], meta["config"]["cost_source"]
    (path / "router.json").write_text(json.dumps(meta))
    with np.load(path / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "cluster_costs"}
    with open(path / "arrays.npz", "wb") as fh:
        np.savez(fh, **arrays)
    old = load_router(path)
    assert old.cost_source == "table" and old.cluster_costs.tolist() == [[1.0, 4.0], [1.0, 4.0]]
    assert old.route_embeddings(np.array(X[0], dtype=np.float32))[0].ranked == \
        r.route_embeddings(np.array(X[0], dtype=np.float32))[0].ranked


def test_fit_with_the_real_embedder_uses_realized_costs(tmp_path):
    # one cluster; a is right on 2 of 3 and costs 1 per answer, b right on all 3 at 30 per answer
    lines = [{"question": q, "scores": {"a": sa, "b": 1},
              "usage": {"a": {"prompt_tokens": 9, "completion_tokens": 20, "latency_s": 0.2, "cost": 1.0},
                        "b": {"prompt_tokens": 9, "completion_tokens": 600, "latency_s": 3.0, "cost": 30.0}}}
             for q, sa in [("What is 2 + 2?", 1), ("What is 3 + 5?", 1), ("Prove Fermat's last theorem.", 0)]]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    recs = load_records(path)
    opts = {"n_clusters": 1, "top_k": 1, "alpha": 0.2}
    r = fit_router(recs, "avengers-pro", costs={"a": 1.0, "b": 1.0}, embedder="static", options=opts)
    # perf a 0, b 1; eff a 1 − 1/30, b 0 → x a .8·29/30 ≈ .7733, b .2
    assert r.meta["cost_source"] == "realized"
    assert r.table[0].tolist() == pytest.approx([0.8 * 29 / 30, 0.2], abs=1e-6)
    assert r.route("What is 7 + 1?").chosen == "a"
    table_only = fit_router(recs, "avengers-pro", costs={"a": 1.0, "b": 1.0}, embedder="static",
                            options={**opts, "cost_source": "table"})
    # equal table prices: eff 0 for both → x a 0, b .2
    assert table_only.route("What is 7 + 1?").chosen == "b"
