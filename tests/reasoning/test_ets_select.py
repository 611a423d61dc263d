"""ETS / REBASE pure logic: the tree and its KV accounting, REBASE's allocation, the ILP, clustering."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from junto.errors import ConfigError
from junto.reasoning.ets import select as S
from junto.reasoning.ets import tree as T


def small_tree():
    """root(10) → a(5) → a1(3), a2(3);  root → b(5) → b1(3).  Candidates a1, a2, b1 (ids 3, 4, 5)."""
    nodes = [T.root(10)]
    T.add_child(nodes, 0, "a", 5)
    T.add_child(nodes, 0, "b", 5)
    T.add_child(nodes, 1, "a1", 3)
    T.add_child(nodes, 1, "a2", 3)
    T.add_child(nodes, 2, "b1", 3)
    return nodes, [3, 4, 5]


# -- tree and KV --------------------------------------------------------------------------------

def test_tree_paths_and_unique_prefix_kv():
    nodes, _ = small_tree()
    assert T.ancestors(nodes, 3) == [1, 0]
    assert T.path(nodes, 3) == [1, 3] and T.steps(nodes, 3) == ["a", "a1"]
    assert T.path_tokens(nodes, 4) == 8
    assert nodes[4]["depth"] == 2
    # a1 + a2 share root and a: 10 + 5 + 3 + 3
    assert T.kv_tokens(nodes, [3, 4]) == 21
    # all three: + b + b1
    assert T.kv_tokens(nodes, [3, 4, 5]) == 29
    # without sharing each path holds its whole prefix: 3 × 18
    assert T.kv_tokens_unshared(nodes, [3, 4, 5]) == 54
    assert T.kv_tokens(nodes, [3, 3]) == 18  # a node kept twice is held once
    assert T.kv_tokens(nodes, []) == 0
    assert T.branch_leaf_map(nodes, [3, 4, 5]) == {1: [0, 1], 0: [0, 1, 2], 2: [2]}


def test_kv_on_random_trees_matches_a_token_level_count():
    """Every node's tokens are distinct token ids: KV = |union of the retained paths' token ids|."""
    rng = random.Random(7)
    for _ in range(30):
        nodes = [T.root(rng.randint(1, 20))]
        for _ in range(rng.randint(1, 25)):
            T.add_child(nodes, rng.randrange(len(nodes)), "s", rng.randint(0, 30))
        start, ranges = 0, []
        for n in nodes:
            ranges.append(range(start, start + n["tokens"]))
            start += n["tokens"]
        ids = rng.sample(range(len(nodes)), rng.randint(1, len(nodes)))
        toks = set()
        for i in ids:
            for j in [i, *T.ancestors(nodes, i)]:
                toks.update(ranges[j])
        assert T.kv_tokens(nodes, ids) == len(toks)


# -- REBASE ---------------------------------------------------------------------------------------

def test_rebase_allocation_hand_cases():
    # weights e^(0.5), 1, 1 (T = 0.2): ceil(4 × 0.452) = 2, then ceil(2 × 1/2) = 1, then the last 1
    assert S.rebase_allocate([0.8, 0.7, 0.7], 4) == [2, 1, 1]
    assert S.rebase_allocate([0.5] * 4, 4) == [1, 1, 1, 1]
    # equal weights, 3 children for 5 nodes: the earlier candidates (tie rule) get them
    assert S.rebase_allocate([0.5] * 5, 3) == [1, 1, 1, 0, 0]
    assert S.rebase_allocate([0.3, 0.3, 0.3], 3) == [1, 1, 1]
    # the last share computes as 7 × w / w = 7.000000000000001: still 7 (the slack and the cap)
    assert S.rebase_allocate([0.84, 0.9], 18) == [7, 11]
    # the best is served first and rounded up, whatever its position
    assert S.rebase_allocate([0.7, 0.9], 5) == [1, 4]
    # at T = 0.2 a 0.8 gap is a factor e^4: the low one gets nothing
    assert S.rebase_allocate([0.1, 0.9], 5) == [0, 5]
    assert S.rebase_allocate([0.1, 0.9], 0) == [0, 0]
    assert S.rebase_allocate([], 4) == []
    # a non-finite score is served last (weight 0 unless nothing is finite)
    assert S.rebase_allocate([float("nan"), 0.5], 2) == [0, 2]


def test_rebase_allocation_always_deals_exactly_the_width():
    rng = random.Random(1)
    for _ in range(300):
        n = rng.randint(1, 40)
        w = rng.randint(1, 300)
        scores = [rng.random() for _ in range(n)]
        alloc = S.rebase_allocate(scores, w, rng.choice([0.05, 0.2, 1.0]))
        assert sum(alloc) == w and min(alloc) >= 0
        # monotone: a better score never gets fewer children
        order = sorted(range(n), key=lambda i: (-scores[i], i))
        assert all(alloc[a] >= alloc[b] for a, b in zip(order, order[1:]))


def test_softmax_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature"):
        S.rebase_allocate([0.5], 1, 0.0)


# -- the ILP ---------------------------------------------------------------------------------------

def test_ets_keeps_fewer_distinct_prefixes_than_rebase_without_diversity():
    """O = (2, 1, 1)/4; M = 3 branches, N = 3 leaves: cost 1/6 each (λc = 1).
    {a1, a2}: 0.75 − 4/6 = 0.083 beats all three: 1 − 6/6 = 0, and {a1}: 0.5 − 3/6 = 0."""
    nodes, cands = small_tree()
    scores = [0.8, 0.7, 0.7]
    rebase = S.rebase_select(scores, 4)
    assert rebase.alloc == [2, 1, 1]
    ets = S.ets_select(nodes, cands, scores, 4, lambda_s=0.0)
    assert ets.keep == [True, True, False]
    assert ets.ilp.objective == pytest.approx(0.75 - 4 / 6)
    # the width is dealt among the kept two by the REBASE rule: e^.5 / (e^.5 + 1) of 4 → 3, then 1
    assert ets.alloc == [3, 1, 0]
    kept_ets = [c for c, a in zip(cands, ets.alloc) if a]
    kept_rebase = [c for c, a in zip(cands, rebase.alloc) if a]
    assert len(kept_ets) == 2 < len(kept_rebase) == 3
    assert T.kv_tokens(nodes, kept_ets) == 21 < T.kv_tokens(nodes, kept_rebase) == 29


def test_diversity_term_changes_the_kept_set():
    """Clusters {a1, a2} and {b1}: λs/K = 0.725 per covered cluster. All three: 0 + 1.45 beats
    {a1, a2}: 0.083 + 0.725 and {a1, b1}: 0.75 − 5/6 + 1.45."""
    nodes, cands = small_tree()
    ets = S.ets_select(nodes, cands, [0.8, 0.7, 0.7], 4, lambda_s=1.45, clusters=[0, 0, 1])
    assert ets.keep == [True, True, True] and ets.alloc == [2, 1, 1]
    assert ets.ilp.objective == pytest.approx(1.45) and ets.ilp.clusters == 2
    # all three in one cluster: diversity cannot pay for branch b, the λs=0 choice comes back
    one = S.ets_select(nodes, cands, [0.8, 0.7, 0.7], 4, lambda_s=1.45, clusters=[0, 0, 0])
    assert one.keep == [True, True, False]


def test_a_large_kv_weight_keeps_a_single_path():
    nodes, cands = small_tree()
    ets = S.ets_select(nodes, cands, [0.8, 0.7, 0.7], 4, lambda_c=10.0, lambda_s=0.0)
    assert sum(ets.keep) == 1 and ets.keep[0]  # Σx ≥ 1 keeps the best one
    assert ets.alloc == [4, 0, 0]


def random_case(rng: random.Random, n_max: int = 8):
    nodes = [T.root(rng.randint(1, 30))]
    for _ in range(rng.randint(1, 12)):
        T.add_child(nodes, rng.randrange(len(nodes)), "s", rng.randint(1, 30))
    non_root = [n["id"] for n in nodes if n["parent"] is not None]
    cands = rng.sample(non_root, min(len(non_root), rng.randint(1, n_max)))
    # candidates are a frontier: none is an ancestor of another
    cands = [c for c in cands if not any(c in T.ancestors(nodes, d) for d in cands)]
    outcome = S.outcome_scores([rng.random() for _ in cands], rng.randint(1, 12))
    clusters = [rng.randrange(3) for _ in cands]
    clusters = [sorted(set(clusters)).index(c) for c in clusters]
    return nodes, cands, outcome, clusters


@pytest.mark.parametrize("reduce,method", [(True, "auto"), (False, "auto"), (True, "milp"), (False, "milp")])
def test_ilp_optimum_matches_enumeration(reduce, method):
    """On random small trees the solver's kept set reaches the best objective over all 2^N kept sets."""
    rng = random.Random(11)
    solvers = set()
    for _ in range(60):
        nodes, cands, outcome, clusters = random_case(rng)
        lc, ls = rng.choice([0.0, 0.5, 1.0, 3.0]), rng.choice([0.0, 1.45])
        cl = clusters if rng.random() < 0.7 else None
        sol = S.ets_ilp(nodes, cands, outcome, lambda_c=lc, lambda_s=ls, clusters=cl, reduce=reduce, method=method)
        solvers.add(sol.solver)
        best = max(S.objective(nodes, cands, outcome, keep, lambda_c=lc, lambda_s=ls, clusters=cl)
                   for keep in itertools.product([False, True], repeat=len(cands)) if any(keep))
        got = S.objective(nodes, cands, outcome, sol.keep, lambda_c=lc, lambda_s=ls, clusters=cl)
        assert any(sol.keep)
        assert got == pytest.approx(best, abs=1e-7)
        assert sol.objective == pytest.approx(best, abs=1e-7)
    assert "milp" in solvers if method == "milp" else "lp" in solvers


def test_reduced_program_is_smaller_on_a_deep_chain():
    nodes = [T.root(5)]
    for _ in range(6):  # a chain of 6 steps, then 4 leaves under its end
        T.add_child(nodes, len(nodes) - 1, "s", 4)
    end = len(nodes) - 1
    cands = [T.add_child(nodes, end, "x", 3)["id"] for _ in range(4)]
    outcome = [0.25] * 4
    full = S.ets_ilp(nodes, cands, outcome, clusters=[0, 1, 2, 3], reduce=False)
    small = S.ets_ilp(nodes, cands, outcome, clusters=[0, 1, 2, 3], reduce=True)
    assert small.keep == full.keep and small.objective == pytest.approx(full.objective)
    assert small.rows < full.rows


def test_ilp_input_errors():
    nodes, cands = small_tree()
    with pytest.raises(ValueError, match="at least one candidate"):
        S.ets_ilp(nodes, [], [])
    with pytest.raises(ValueError, match="outcome"):
        S.ets_ilp(nodes, cands, [0.5])
    with pytest.raises(ValueError, match="cluster labels"):
        S.ets_ilp(nodes, cands, [0.5, 0.25, 0.25], clusters=[0])
    with pytest.raises(ValueError, match=">= 0"):
        S.ets_ilp(nodes, cands, [0.5, 0.25, 0.25], lambda_c=-1.0)


# -- clustering ------------------------------------------------------------------------------------

def test_clusters_by_cosine_cut_at_005():
    base = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    near = base[0] + np.array([0.0, 0.05, 0.0])    # cosine distance ≈ 0.0012: same cluster
    far = base[0] + np.array([0.0, 0.5, 0.0])      # ≈ 0.106: apart
    labels = S.cluster_labels(np.vstack([base[0], near, base[1], far, 3 * base[1]]))
    assert labels == [0, 0, 1, 2, 1]
    assert S.cluster_labels(np.zeros((0, 3))) == []
    assert S.cluster_labels(np.ones((1, 3))) == [0]
    # a zero row is at distance 1 from the rest: its own cluster
    assert S.cluster_labels(np.vstack([base, np.zeros(3)])) == [0, 1, 2]
    # a looser cut joins what the default keeps apart
    assert S.cluster_labels(np.vstack([base[0], far]), threshold=0.2) == [0, 0]
    with pytest.raises(ValueError, match="2-d"):
        S.cluster_labels(np.ones(3))


def test_outcome_scores_sum_to_one():
    o = S.outcome_scores([0.8, 0.7, 0.7], 4)
    assert o == [0.5, 0.25, 0.25] and math.isclose(sum(o), 1.0)


# -- parameters ------------------------------------------------------------------------------------

def test_params_errors_name_the_problem():
    from junto.reasoning.registry import validate_params

    p = validate_params("rebase", {"scorer": "arith"})
    assert p.selection == "rebase" and p.scorer.kind == "arith"
    assert validate_params("ets", {}).selection == "ets"
    with pytest.raises(ConfigError, match="width"):
        validate_params("ets", {"width": 0})
    with pytest.raises(ConfigError, match="needs a deployment"):
        validate_params("ets", {"scorer": {"kind": "judge"}})
    with pytest.raises(ConfigError, match="selection"):
        validate_params("ets", {"selection": "beam"})
