"""The Avengers router and its cost-aware variant, Avengers-Pro.

Avengers — Zhang et al., "The Avengers: A Simple Recipe for Uniting Smaller Language Models to
Challenge Proprietary Giants", arXiv:2505.19797 (code: github.com/ZhangYiqun018/Avengers).
Offline: embed the calibration queries, cluster them with K-means (k-means++), and rank the models
inside each cluster by their mean score there. Online: take the query's ``top_k`` nearest clusters
by cosine distance d, weight them p = softmax(−β·d), and score each model
score(m) = Σ_c p_c / (rank_c(m) + 0.1); the best ``top_n`` models are returned.

Published defaults used here: K = 64 clusters (the paper's setting; ``generate_rank_router.py``
fits KMeans with k-means++, n_init="auto", max_iter=1000, algorithm="elkan", seed 42); top_k = 3
nearest clusters and β = 6.0 (the rank-router configuration in the repository's README; the code's
fall-backs are top_k = 11, β = 3.0); rank offset 0.1; top_n = 3 when used for ensembles (the
caller decides how many of ``ranked`` to use). One deliberate difference: centroids are
L2-normalized, so d is the true cosine distance the paper describes (the reference code takes
1 − c·q with raw centroids).

Avengers-Pro — Zhang et al., "Beyond GPT-5: Making LLMs Cheaper and Better via Performance–
Efficiency Optimized Routing", arXiv:2508.12631 (code: the AvengersPro ``balance_cluster_router``).
Each cluster ranks the models by a performance–efficiency score, and routing sums the rank scores
over the nearest clusters as above. For cluster c and model m, with acc[c, m] the model's mean score
on the cluster's training queries and cost[c, m] its cost there:

    perf[c, m] = (acc[c, m] − min_m' acc[c, m']) / (max_m' acc[c, m'] − min_m' acc[c, m'])
                 (per-cluster min–max; 1 for every model when they all score the same)
    eff[c, m]  = 1 − cost[c, m] / max_m' cost[c, m']
                 (divided by the cluster's dearest model, not min–max: the cheapest model gets 1 only
                 if it is free; 1 for every model when all costs are 0)
    x[c, m]    = α · perf[c, m] + (1 − α) · eff[c, m]

cost[c, m] is the *realized* cost when the routing records carry one (``usage.cost``, written by
``junto route calibrate``): the mean cost of model m's answers to the cluster's training queries,
as the reference code computes it from its records' ``usages``. A model with no known cost in a
cluster gets its mean over all records. Without realized costs (or with ``cost_source="table"``)
cost[c, m] is the configured price table's cost of m, the same in every cluster. The artifact
records which was used (``cost_source``) and keeps the K × M cost table (``cluster_costs``).

Ties are broken deterministically: within a cluster, equal x goes to the lower cost[c, m], then to
the model name (alphabetical); in the final score, to the lower overall cost, then to the name.
Defaults from the reference code's configuration: K = 32, top_k = 1, β = 9.0, α = 0.7
(performance_weight; cost_sensitivity 1 − α), rank score 1/(rank + 1).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from junto.errors import ConfigError
from junto.routers.base import Records, Router, RouterConfig, faiss_search
from junto.routers.scoring import balance_table, cluster_cost_means, cluster_means, rank_scores, ranks_desc


class AvengersConfig(RouterConfig):
    n_clusters: int = Field(64, ge=1, description="K-means clusters (paper: 64)")
    top_k: int = Field(3, ge=1, description="nearest clusters that vote")
    beta: float = Field(6.0, ge=0, description="softmax sharpness over cluster distances")
    rank_offset: float = Field(0.1, gt=0, description="score(m) = Σ p_c / (rank_c(m) + rank_offset)")
    seed: int = 42
    max_iter: int = Field(1000, ge=1)


class AvengersProConfig(AvengersConfig):
    n_clusters: int = Field(32, ge=1)
    top_k: int = Field(1, ge=1)
    beta: float = Field(9.0, ge=0)
    rank_offset: float = Field(1.0, gt=0)
    alpha: float = Field(0.7, ge=0, le=1, description="weight of accuracy against cost (performance_weight)")
    cost_source: Literal["auto", "realized", "table"] = Field(
        "auto", description="per-cluster realized cost from the records (auto: when they carry it) or the price table")


def kmeans(emb: np.ndarray, n_clusters: int, seed: int, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn K-means with the reference code's settings; returns (unit centroids, labels)."""
    from sklearn.cluster import KMeans

    k = min(n_clusters, len(emb))
    # elkan, as the reference; scikit-learn falls back to lloyd (with a warning) for a single cluster
    km = KMeans(n_clusters=k, init="k-means++", n_init="auto", max_iter=max_iter,
                algorithm="elkan" if k > 1 else "lloyd", random_state=seed)
    labels = km.fit_predict(emb.astype(np.float64))
    centers = km.cluster_centers_.astype(np.float32)
    centers /= np.maximum(np.linalg.norm(centers, axis=1, keepdims=True), 1e-12)
    return centers, labels.astype(np.int64)


class AvengersRouter(Router):
    method = "avengers"
    Config = AvengersConfig

    @classmethod
    def _fit(cls, records: Records, emb: np.ndarray, costs: np.ndarray, cfg: AvengersConfig
             ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        centers, labels = kmeans(emb, cfg.n_clusters, cfg.seed, cfg.max_iter)
        acc, counts = cluster_means(labels, records.scores, len(centers))
        arrays = {"centroids": centers, "accuracy": acc.astype(np.float32), "counts": counts.astype(np.int64)}
        extra: dict[str, Any] = {"n_clusters": int(len(centers))}
        arrays["table"] = cls._table(acc, cls._cluster_costs(records, labels, len(centers), costs, cfg, arrays, extra),
                                     cfg).astype(np.float32)
        return arrays, extra

    @classmethod
    def _cluster_costs(cls, records: Records, labels: np.ndarray, k: int, costs: np.ndarray, cfg: Any,
                       arrays: dict[str, np.ndarray], extra: dict[str, Any]) -> np.ndarray:
        """The cost each cluster ranks models by (K × M); plain Avengers ignores cost."""
        return np.broadcast_to(costs, (k, len(costs)))

    @staticmethod
    def _table(acc: np.ndarray, cluster_costs: np.ndarray, cfg: AvengersConfig) -> np.ndarray:
        """What each cluster ranks models by: plain accuracy here."""
        return acc

    def _cluster_ranks(self) -> np.ndarray:
        """Each cluster's model ranks: by table value; ties keep model order (the reference's sort)."""
        return ranks_desc(self.table)

    def _setup(self) -> None:
        import faiss

        self.centroids = np.ascontiguousarray(self.arrays["centroids"], dtype=np.float32)
        self.table = np.asarray(self.arrays["table"], dtype=np.float64)
        self.ranks = self._cluster_ranks()
        self.index = faiss.IndexFlatIP(self.centroids.shape[1])
        self.index.add(self.centroids)
        self.top_k = min(self.config.top_k, len(self.centroids))

    def with_alpha(self, alpha: float) -> AvengersRouter:
        """The same clusters re-ranked for another α (Avengers-Pro only; for α sweeps without refitting)."""
        raise NotImplementedError

    def _scores(self, emb: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        if emb.shape[1] != self.centroids.shape[1]:
            raise ConfigError(f"query embedding has {emb.shape[1]} dimensions, the router's clusters "
                              f"{self.centroids.shape[1]}", hint="embed with the router's own embedder")
        sims, ids = faiss_search(self.index, emb, self.top_k)
        dists = 1.0 - sims
        scores, p = rank_scores(dists, ids, self.ranks, self.config.beta, self.config.rank_offset)
        details = [{"clusters": [{"cluster": int(c), "distance": float(d), "weight": float(w)}
                                 for c, d, w in zip(ids[i], dists[i], p[i])]} for i in range(len(emb))]
        return scores, details

    def cluster_profile(self, cluster: int) -> dict[str, float]:
        return {m: float(v) for m, v in zip(self.models, self.table[cluster])}


class AvengersProRouter(AvengersRouter):
    """Avengers-Pro: clusters rank models by α·perf + (1 − α)·eff (see the module docstring).

    The per-cluster cost behind eff is ``self.cluster_costs`` (K × M): realized mean costs when the
    fit records carried them (``meta["cost_source"] == "realized"``), else the price table
    (``"table"``; artifacts written before realized costs existed also read as ``"table"``).
    """

    method = "avengers-pro"
    Config = AvengersProConfig
    tie_break_by_name = True

    @classmethod
    def _cluster_costs(cls, records: Records, labels: np.ndarray, k: int, costs: np.ndarray, cfg: AvengersProConfig,
                       arrays: dict[str, np.ndarray], extra: dict[str, Any]) -> np.ndarray:
        use_realized = cfg.cost_source == "realized" or (cfg.cost_source == "auto" and records.has_realized_costs)
        if use_realized:
            if not records.has_realized_costs:
                raise ConfigError("cost_source 'realized' needs records with a realized cost for every model",
                                  hint="calibrate with `junto route calibrate` (it records usage and cost), "
                                       "or use cost_source 'table' / 'auto'")
            assert records.realized_costs is not None
            table = cluster_cost_means(labels, records.realized_costs, k)
        else:
            table = np.broadcast_to(np.asarray(costs, dtype=np.float64), (k, len(costs))).copy()
        arrays["cluster_costs"] = table.astype(np.float64)
        extra["cost_source"] = "realized" if use_realized else "table"
        return table

    @staticmethod
    def _table(acc: np.ndarray, cluster_costs: np.ndarray, cfg: AvengersProConfig) -> np.ndarray:
        return balance_table(acc, cluster_costs, cfg.alpha)

    @property
    def cluster_costs(self) -> np.ndarray:
        """K × M cost each cluster ranked by (the price table repeated, for artifacts without one)."""
        cc = self.arrays.get("cluster_costs")
        if cc is None:
            return np.broadcast_to(self.cost_vector, (len(self.arrays["centroids"]), len(self.models)))
        return np.asarray(cc, dtype=np.float64)

    @property
    def cost_source(self) -> str:
        return self.meta.get("cost_source", "table")

    def _cluster_ranks(self) -> np.ndarray:
        # equal x → the cheaper model in that cluster → the model name
        return ranks_desc(self.table, self.cluster_costs, self.tie_rank)

    def with_alpha(self, alpha: float) -> AvengersProRouter:
        meta = {**self.meta, "config": {**self.meta["config"], "alpha": float(alpha)}}
        table = balance_table(self.arrays["accuracy"].astype(np.float64), self.cluster_costs, alpha)
        return AvengersProRouter(meta, {**self.arrays, "table": table.astype(np.float32)}, self.path)

    def cluster_cost_profile(self, cluster: int) -> dict[str, float]:
        return {m: float(v) for m, v in zip(self.models, self.cluster_costs[cluster])}
