"""Which frontier nodes to expand, and how many children each gets: REBASE and ETS. Pure functions.

**REBASE** (Wu et al., "Inference Scaling Laws", arXiv 2408.00724): the candidates' scores become
softmax weights ``exp(score / T)`` (``T = 0.2``) and the remaining width ``W`` is dealt out in
proportion. Rounding rule (the reference's, kept exactly): candidates are taken best score first
(ties: the earlier candidate first); each gets ``ceil(W_left * w_i / S_left)`` where ``W_left`` is the
width not yet dealt and ``S_left`` the weight of the candidates not yet served (itself included).
The counts therefore sum to exactly ``W`` (the last candidate served gets all that is left),
the best candidate is rounded *up*, and once the width is used up the rest get 0. A 1e-9 slack keeps
float noise (``7 × w / w = 7.000000000000001``) from rounding up a whole extra child.

**ETS** (Hooper et al., "ETS: Efficient Tree Search for Inference-Time Scaling", arXiv 2502.13575,
SqueezeAILab/ETS): before the REBASE allocation, an integer program chooses which candidates to keep

    maximise  Σᵢ Oᵢ xᵢ − λc/(M+N) (Σⱼ yⱼ + Σᵢ xᵢ) + (λs/K) Σₖ cₖ
    s.t.      yⱼ ≥ xᵢ  for every candidate i under branch j;   yⱼ ≤ Σ_{i under j} xᵢ
              Σᵢ xᵢ ≥ 1;   cₖ ≤ Σ_{i in cluster k} xᵢ;   x, y, c binary

with ``N`` candidates (leaves ``xᵢ``), ``M`` branches (every ancestor of a candidate, ``yⱼ``: kept when a
kept leaf needs its KV) and ``K`` clusters of the candidates' new steps (``cₖ``: covered when one of
its steps is kept). ``Oᵢ`` is REBASE's allocation for the candidate normalised to sum 1 (the
reference's choice: the outcome term values a node by the children REBASE would give it); each kept
node costs ``λc/(M+N)``, the KV its step holds. Clusters: average-linkage agglomerative clustering
of the new steps' embeddings under cosine distance, cut at distance 0.05 (the reference). The
diversity term is used only when ``λs > 0``, there are at least two candidates and two distinct
step texts (as in the reference). The width is then dealt among the *kept* candidates by the REBASE
rule above. Defaults: ``λc = 1.0``, ``λs = 1.45`` (the paper's), ``T = 0.2``. The program is solved
with SciPy's HiGHS: its LP relaxation first (an integral optimum is the answer), else
:func:`scipy.optimize.milp`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from junto.reasoning.ets.tree import Node, branch_leaf_map

#: the REBASE softmax temperature of both papers
SOFTMAX_T = 0.2
#: the cosine distance at which the reference cuts its step clusters
CLUSTER_DISTANCE = 0.05
_SLACK = 1e-9


def softmax_weights(scores: Sequence[float], temperature: float = SOFTMAX_T) -> np.ndarray:
    """``exp(score / T)``, shifted by the maximum (the allocation uses ratios only, so the shift is free)."""
    if temperature <= 0:
        raise ValueError(f"softmax temperature must be > 0 (got {temperature})")
    s = np.asarray(scores, dtype=float)
    if s.size == 0:
        return s
    s = np.where(np.isfinite(s), s, -np.inf)
    top = np.max(s)
    if not np.isfinite(top):
        return np.ones_like(s)  # no finite score at all: all alike
    return np.exp((s - top) / temperature)


def rebase_allocate(scores: Sequence[float], width: int, temperature: float = SOFTMAX_T) -> list[int]:
    """Children per candidate (in the order given) under REBASE's rounding rule (module docstring)."""
    n = len(scores)
    out = [0] * n
    if n == 0 or width <= 0:
        return out
    w = softmax_weights(scores, temperature)
    order = sorted(range(n), key=lambda i: (-float(scores[i]) if math.isfinite(scores[i]) else math.inf, i))
    ws = [float(w[i]) for i in order]
    suffix = [0.0] * (n + 1)
    for k in range(n - 1, -1, -1):
        suffix[k] = suffix[k + 1] + ws[k]
    left = width
    for k, i in enumerate(order):
        if left <= 0:
            break
        if suffix[k] <= 0:
            break
        num = min(left, math.ceil(left * ws[k] / suffix[k] - _SLACK))
        out[i] = num
        left -= num
    return out


def outcome_scores(scores: Sequence[float], width: int, temperature: float = SOFTMAX_T) -> list[float]:
    """ETS's ``Oᵢ``: REBASE's allocation normalised to sum 1."""
    alloc = rebase_allocate(scores, width, temperature)
    total = sum(alloc)
    return [a / total for a in alloc] if total else [0.0] * len(alloc)


def cluster_labels(embeddings: np.ndarray, threshold: float = CLUSTER_DISTANCE) -> list[int]:
    """Cluster labels 0…K-1 of the rows of ``embeddings``: average linkage, cosine distance, cut at
    ``threshold``. A zero row (nothing to compare) is at distance 1 from every other row."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    x = np.asarray(embeddings, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d array (got shape {x.shape})")
    n = x.shape[0]
    if n <= 1:
        return [0] * n
    with np.errstate(invalid="ignore", divide="ignore"):
        d = pdist(x, metric="cosine")
    d = np.clip(np.nan_to_num(d, nan=1.0), 0.0, 2.0)
    z = linkage(d, method="average")
    raw = fcluster(z, threshold, criterion="distance")
    # relabel in order of first appearance: stable, 0-based
    seen: dict[int, int] = {}
    return [seen.setdefault(int(r), len(seen)) for r in raw]


@dataclass
class ILPSolution:
    """The integer program's answer: which candidates to keep, and what the program looked like."""

    keep: list[bool]
    objective: float
    #: branches M, clusters K (0: no diversity term), constraint rows
    branches: int
    clusters: int
    rows: int
    solve_s: float
    status: str
    #: "lp" (the relaxation's optimum was integral) or "milp"
    solver: str = "milp"


def ets_ilp(nodes: Sequence[Node], candidates: Sequence[int], outcome: Sequence[float], *, lambda_c: float = 1.0,
            lambda_s: float = 1.45, clusters: Sequence[int] | None = None, reduce: bool = True,
            method: str = "auto") -> ILPSolution:
    """Solve ETS's program for the candidate node ids (positions match ``outcome`` and ``clusters``).

    ``clusters``: a cluster label per candidate, or ``None`` for no diversity term (also dropped when
    ``lambda_s == 0``). ``reduce`` (default) solves an exactly equivalent, smaller program (``λc ≥ 0``):
    branches with the same set of candidates under them always take the same value, so they become one
    variable whose cost is the sum of theirs; a branch over a single candidate equals that candidate
    (its cost moves onto ``xᵢ``); a branch over every candidate is always kept (``Σ xᵢ ≥ 1``): a
    constant; a one-member cluster is covered exactly when its member is kept (its bonus moves onto
    ``xᵢ``). ``reduce=False`` builds the program as written, one variable per branch and cluster.

    ``method="auto"`` (default) first solves the LP relaxation (HiGHS through ``scipy.optimize.linprog``,
    about half the time of the MIP here): when its optimal vertex is integral it is an optimum of the
    integer program too; otherwise — and always with ``method="milp"`` — ``scipy.optimize.milp`` solves
    the integer program.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    n = len(candidates)
    if n == 0:
        raise ValueError("ets_ilp needs at least one candidate")
    if len(outcome) != n:
        raise ValueError(f"{len(outcome)} outcome scores for {n} candidates")
    if lambda_c < 0 or lambda_s < 0:
        raise ValueError(f"lambda_c and lambda_s must be >= 0 (got {lambda_c}, {lambda_s})")
    branch_map = branch_leaf_map(nodes, candidates)
    m = len(branch_map)
    use_div = clusters is not None and lambda_s > 0
    labels = list(clusters) if use_div else []
    if use_div and len(labels) != n:
        raise ValueError(f"{len(labels)} cluster labels for {n} candidates")
    k = (max(labels) + 1) if use_div else 0
    cost = lambda_c / (m + n)
    bonus = lambda_s / k if k else 0.0
    cx = np.asarray(outcome, dtype=float) - cost
    constant = 0.0
    # branch groups: (candidate positions under it, total cost)
    groups: list[tuple[list[int], float]] = []
    if reduce:
        merged: dict[tuple[int, ...], int] = {}
        for under in branch_map.values():
            key = tuple(sorted(set(under)))
            merged[key] = merged.get(key, 0) + 1
        for key, mult in merged.items():
            if len(key) == n:
                constant -= cost * mult
            elif len(key) == 1:
                cx[key[0]] -= cost * mult
            else:
                groups.append((list(key), cost * mult))
    else:
        groups = [(list(under), cost) for under in branch_map.values()]
    members_by_cluster = [[i for i, lab in enumerate(labels) if lab == kk] for kk in range(k)]
    cover: list[list[int]] = []
    for members in members_by_cluster:
        if reduce and len(members) == 1:
            cx[members[0]] += bonus
        elif members:
            cover.append(members)
    g, kc = len(groups), len(cover)
    nv = n + g + kc
    c = np.zeros(nv)
    c[:n] = cx
    c[n:n + g] = [-gc for _, gc in groups]
    c[n + g:] = bonus
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lb: list[float] = []
    ub: list[float] = []
    r = 0
    for j, (under, _) in enumerate(groups):
        yj = n + j
        for i in under:              # y_j - x_i >= 0
            rows += [r, r]
            cols += [yj, i]
            vals += [1.0, -1.0]
            lb.append(0.0)
            ub.append(np.inf)
            r += 1
        rows += [r] * (len(under) + 1)   # y_j - Σ x_i <= 0
        cols += [yj, *under]
        vals += [1.0] + [-1.0] * len(under)
        lb.append(-np.inf)
        ub.append(0.0)
        r += 1
    rows += [r] * n                   # Σ x_i >= 1
    cols += list(range(n))
    vals += [1.0] * n
    lb.append(1.0)
    ub.append(np.inf)
    r += 1
    for kk, members in enumerate(cover):   # c_k - Σ_{i in k} x_i <= 0
        rows += [r] * (len(members) + 1)
        cols += [n + g + kk, *members]
        vals += [1.0] + [-1.0] * len(members)
        lb.append(-np.inf)
        ub.append(0.0)
        r += 1
    if method not in ("auto", "milp"):
        raise ValueError(f"method must be 'auto' or 'milp' (got {method!r})")
    a = coo_matrix((vals, (rows, cols)), shape=(r, nv)).tocsr()
    lo, hi = np.asarray(lb), np.asarray(ub)
    t0 = time.perf_counter()
    if method == "auto":
        from scipy.optimize import linprog
        from scipy.sparse import vstack

        has_hi, has_lo = np.isfinite(hi), np.isfinite(lo)
        lp = linprog(-c, A_ub=vstack([a[has_hi], -a[has_lo]]), b_ub=np.concatenate([hi[has_hi], -lo[has_lo]]),
                     bounds=(0, 1), method="highs")
        if lp.status == 0 and lp.x is not None and np.all(np.abs(lp.x - np.round(lp.x)) <= 1e-9):
            solve_s = time.perf_counter() - t0
            keep = [bool(v > 0.5) for v in lp.x[:n]]
            return ILPSolution(keep=keep, objective=float(-lp.fun) + constant, branches=m, clusters=k, rows=r,
                               solve_s=solve_s, status="LP relaxation integral", solver="lp")
    res = milp(-c, constraints=LinearConstraint(a, lo, hi), integrality=np.ones(nv), bounds=Bounds(0, 1))
    solve_s = time.perf_counter() - t0
    if res.x is None:
        raise RuntimeError(f"ETS integer program not solved: {res.message}")
    keep = [bool(v > 0.5) for v in res.x[:n]]
    return ILPSolution(keep=keep, objective=float(-res.fun) + constant, branches=m, clusters=k, rows=r,
                       solve_s=solve_s, status=str(res.message), solver="milp")


def objective(nodes: Sequence[Node], candidates: Sequence[int], outcome: Sequence[float], keep: Sequence[bool], *,
              lambda_c: float = 1.0, lambda_s: float = 1.45, clusters: Sequence[int] | None = None) -> float:
    """The program's objective for a given kept set (branches and clusters at their best values): for
    checking the solver by enumeration in tests and for reporting."""
    n = len(candidates)
    branch_map = branch_leaf_map(nodes, candidates)
    m = len(branch_map)
    cost = lambda_c / (m + n)
    y = sum(1 for under in branch_map.values() if any(keep[i] for i in under))
    val = sum(o for o, x in zip(outcome, keep) if x) - cost * (y + sum(keep))
    if clusters is not None and lambda_s > 0:
        kk = max(clusters) + 1
        covered = {lab for lab, x in zip(clusters, keep) if x}
        val += lambda_s / kk * len(covered)
    return val


@dataclass
class Selection:
    """Children per candidate (``alloc``, in candidate order), and what the selection saw."""

    alloc: list[int]
    #: ETS: the ILP's kept set (REBASE: alloc > 0)
    keep: list[bool]
    ilp: ILPSolution | None = None
    clusters: list[int] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def expanded(self) -> list[int]:
        """Positions of the candidates that get at least one child."""
        return [i for i, a in enumerate(self.alloc) if a > 0]


def rebase_select(scores: Sequence[float], width: int, temperature: float = SOFTMAX_T) -> Selection:
    alloc = rebase_allocate(scores, width, temperature)
    return Selection(alloc=alloc, keep=[a > 0 for a in alloc])


def ets_select(nodes: Sequence[Node], candidates: Sequence[int], scores: Sequence[float], width: int, *,
               temperature: float = SOFTMAX_T, lambda_c: float = 1.0, lambda_s: float = 1.45,
               clusters: Sequence[int] | None = None) -> Selection:
    """ETS: the integer program picks the kept candidates, REBASE deals the width among them.

    ``clusters``: cluster labels of the candidates' new steps (:func:`cluster_labels`); ``None``
    drops the diversity term (the caller passes ``None`` when the steps' texts are all the same).
    """
    n = len(candidates)
    if n == 0 or width <= 0:
        return Selection(alloc=[0] * n, keep=[False] * n)
    outcome = outcome_scores(scores, width, temperature)
    use = clusters if (clusters is not None and lambda_s > 0 and n > 1) else None
    sol = ets_ilp(nodes, candidates, outcome, lambda_c=lambda_c, lambda_s=lambda_s, clusters=use)
    kept = [i for i in range(n) if sol.keep[i]]
    sub = rebase_allocate([scores[i] for i in kept], width, temperature)
    alloc = [0] * n
    for i, a in zip(kept, sub):
        alloc[i] = a
    return Selection(alloc=alloc, keep=list(sol.keep), ilp=sol, clusters=list(use) if use is not None else None)


__all__ = ["SOFTMAX_T", "CLUSTER_DISTANCE", "softmax_weights", "rebase_allocate", "outcome_scores", "cluster_labels",
           "ILPSolution", "ets_ilp", "objective", "Selection", "rebase_select", "ets_select"]
