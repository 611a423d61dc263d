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
Each cluster ranks the models by the performance–efficiency score
x = α·minmax(accuracy) + (1 − α)·(1 − cost/max_cost) (both normalized within the cluster), and
routing sums the rank scores over the nearest clusters as above. Defaults from the reference code's
configuration: K = 32, top_k = 1, β = 9.0, α = 0.7 (performance_weight; cost_sensitivity 1 − α),
rank score 1/(rank + 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from junto.routers.base import Records, Router, RouterConfig, faiss_search
from junto.routers.scoring import balance_table, cluster_means, rank_scores, ranks_desc


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


def kmeans(emb: np.ndarray, n_clusters: int, seed: int, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn K-means with the reference code's settings; returns (unit centroids, labels)."""
    from sklearn.cluster import KMeans

    k = min(n_clusters, len(emb))
    km = KMeans(n_clusters=k, init="k-means++", n_init="auto", max_iter=max_iter, algorithm="elkan",
                random_state=seed)
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
        arrays["table"] = cls._table(acc, costs, cfg).astype(np.float32)
        return arrays, {"n_clusters": int(len(centers))}

    @staticmethod
    def _table(acc: np.ndarray, costs: np.ndarray, cfg: AvengersConfig) -> np.ndarray:
        """What each cluster ranks models by: plain accuracy here."""
        return acc

    def _setup(self) -> None:
        import faiss

        self.centroids = np.ascontiguousarray(self.arrays["centroids"], dtype=np.float32)
        self.table = np.asarray(self.arrays["table"], dtype=np.float64)
        self.ranks = ranks_desc(self.table)
        self.index = faiss.IndexFlatIP(self.centroids.shape[1])
        self.index.add(self.centroids)
        self.top_k = min(self.config.top_k, len(self.centroids))

    def with_alpha(self, alpha: float) -> AvengersRouter:
        """The same clusters re-ranked for another α (Avengers-Pro only; for α sweeps without refitting)."""
        raise NotImplementedError

    def _scores(self, emb: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        if emb.shape[1] != self.centroids.shape[1]:
            from junto.errors import ConfigError

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
    method = "avengers-pro"
    Config = AvengersProConfig

    @staticmethod
    def _table(acc: np.ndarray, costs: np.ndarray, cfg: AvengersProConfig) -> np.ndarray:
        return balance_table(acc, costs, cfg.alpha)

    def with_alpha(self, alpha: float) -> AvengersProRouter:
        meta = {**self.meta, "config": {**self.meta["config"], "alpha": float(alpha)}}
        table = balance_table(self.arrays["accuracy"].astype(np.float64), self.cost_vector, alpha)
        return AvengersProRouter(meta, {**self.arrays, "table": table.astype(np.float32)}, self.path)
