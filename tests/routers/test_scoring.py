"""The routing math, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from junto.routers.scoring import (FUSION_PRESETS, aiq, balance_table, best_single_index, cluster_means,
                                   evaluate_choices, fusion_labels, gap_closed, rank_scores, ranks_desc, softmax,
                                   upper_hull)


def test_softmax_is_stable_and_normalized():
    p = softmax(np.array([[1000.0, 1000.0, 998.0]]))
    assert p.sum() == pytest.approx(1.0)
    assert p[0, 0] == pytest.approx(p[0, 1])
    assert p[0, 0] / p[0, 2] == pytest.approx(math.e ** 2)


def test_ranks_best_first_ties_keep_model_order():
    table = np.array([[0.2, 0.9, 0.9, 0.1]])
    assert ranks_desc(table).tolist() == [[2, 0, 1, 3]]


def test_avengers_score_matches_the_formula_by_hand():
    # two clusters; ranks: cluster 0 prefers model 0, cluster 1 prefers model 1
    ranks = np.array([[0, 1], [1, 0]])
    dists = np.array([[0.1, 0.3]])
    ids = np.array([[0, 1]])
    beta = 6.0
    scores, p = rank_scores(dists, ids, ranks, beta, 0.1)
    w0 = math.exp(-beta * 0.1) / (math.exp(-beta * 0.1) + math.exp(-beta * 0.3))
    w1 = 1 - w0
    assert p[0].tolist() == pytest.approx([w0, w1])
    assert scores[0, 0] == pytest.approx(w0 / 0.1 + w1 / 1.1)
    assert scores[0, 1] == pytest.approx(w0 / 1.1 + w1 / 0.1)
    assert scores[0, 0] > scores[0, 1]  # the nearer cluster wins


def test_beta_zero_weights_clusters_equally():
    _, p = rank_scores(np.array([[0.0, 0.9, 0.5]]), np.array([[0, 1, 2]]), np.zeros((3, 2), dtype=int), 0.0, 0.1)
    assert p[0].tolist() == pytest.approx([1 / 3] * 3)


def test_cluster_means_and_counts():
    labels = np.array([0, 0, 1, 2, 2, 2])
    scores = np.array([[1, 0], [0, 0], [1, 1], [1, 0], [1, 1], [0, 0]], dtype=float)
    means, counts = cluster_means(labels, scores, 4)
    assert counts.tolist() == [2, 1, 3, 0]
    assert means[0].tolist() == [0.5, 0.0]
    assert means[2].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert means[3].tolist() == [0.0, 0.0]  # empty cluster


def test_balance_table_extremes_and_midpoint():
    acc = np.array([[0.2, 0.6, 1.0]])
    costs = np.array([10.0, 50.0, 100.0])
    assert balance_table(acc, costs, 1.0)[0].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert balance_table(acc, costs, 0.0)[0].tolist() == pytest.approx([0.9, 0.5, 0.0])
    mid = balance_table(acc, costs, 0.5)[0]
    assert mid.tolist() == pytest.approx([0.45, 0.5, 0.5])
    # a cluster where every model scores the same: normalized accuracy 1 for all (reference behaviour)
    flat = balance_table(np.array([[0.3, 0.3, 0.3]]), costs, 1.0)
    assert flat[0].tolist() == [1.0, 1.0, 1.0]


def test_fusion_labels_presets():
    assert FUSION_PRESETS == {"performance": (1.0, 0.0), "balance": (0.5, 0.5), "cost": (0.2, 0.8)}
    scores = np.array([[1.0, 1.0, 0.0]])
    costs = np.array([7.0, 70.0, 7.0])
    assert fusion_labels(scores, costs, *FUSION_PRESETS["performance"])[0].tolist() == [1.0, 1.0, 0.0]
    bal = fusion_labels(scores, costs, *FUSION_PRESETS["balance"])[0]
    assert bal.tolist() == pytest.approx([0.5, 0.0, 0.0])
    cost = fusion_labels(scores, costs, *FUSION_PRESETS["cost"])[0]
    assert cost.tolist() == pytest.approx([0.2, -0.6, 0.0])


def test_evaluate_choices_references_and_gap():
    scores = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 0], [1, 1, 1]], dtype=float)
    costs = np.array([1.0, 2.0, 10.0])
    res = evaluate_choices(np.array([0, 2, 1, 0]), scores, costs, best_single=2)
    assert res["accuracy"] == 1.0
    assert res["avg_cost"] == pytest.approx((1 + 10 + 2 + 1) / 4)
    assert res["best_single"] == 0.75
    assert res["oracle"] == 1.0
    assert res["oracle_cost"] == pytest.approx((1 + 10 + 2 + 1) / 4)
    assert res["random"] == pytest.approx(scores.mean())
    assert res["gap_closed"] == pytest.approx(1.0)
    assert gap_closed(0.5, 0.6, 0.6) is None


def test_best_single_prefers_cheaper_on_ties():
    scores = np.array([[1, 1, 0], [0, 0, 1]], dtype=float)
    assert best_single_index(scores, np.array([5.0, 1.0, 9.0])) == 1


def test_upper_hull_and_aiq():
    pts = [(1, 0.2), (2, 0.25), (3, 0.6), (4, 0.55), (5, 0.7)]
    hull = upper_hull(pts)
    assert hull == [(1, 0.2), (3, 0.6), (5, 0.7)]
    # a flat router at quality q everywhere has AIQ q
    assert aiq([(0, 0.4), (10, 0.4)], 0, 10) == pytest.approx(0.4)
    # trapezoid by hand for the hull above over [1, 5]
    expect = ((0.2 + 0.6) / 2 * 2 + (0.6 + 0.7) / 2 * 2) / 4
    assert aiq(pts, 1, 5) == pytest.approx(expect, abs=1e-3)
