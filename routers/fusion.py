"""FusionFactory's query-level routers: kNN, MLP and linear SVM over the query embedding.

Feng et al., "FusionFactory: Fusing LLM Capabilities with Multi-LLM Log Data" (github.com/
ulab-uiuc/FusionFactory, ``query_level/router_bench_baseline``). Each router predicts, for every
model, the reward of sending the query there, and routes to the highest prediction. The reward
label is FusionFactory's α·normalized performance − β·normalized cost with its three presets
(``query_level/data_processing.py``): performance-first (α=1, β=0), balance (0.5, 0.5) and
cost-first (0.2, 0.8).

Published defaults used here: all-MiniLM-L6-v2 query embeddings; kNN with 50 neighbours under
cosine similarity; an ``MLPRegressor`` with one hidden layer of 50 ReLU units,
learning rate 0.001 (the script's ``main``), L2 α = 0.01, early stopping on a 10% split,
max_iter 500, random_state 1234; a ``LinearSVR(random_state=1234)`` per model.

Differences, on purpose: FusionFactory's baselines regress a one-hot "was this model the argmax"
target and its kNN counts argmax votes; junto regresses (or averages, for kNN) each model's reward
itself, which is what the issue asks for and keeps ties between equally good models instead of
breaking them arbitrarily. The MLP is one network with an output per model (FusionFactory trains
one per model): a shared hidden layer, and 5-9x faster to fit on two CPU cores. Neighbour search uses faiss (exact inner product on unit vectors).
Fitted weights are stored as arrays and applied with numpy, so routing imports no scikit-learn.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from junto.routers.base import Records, Router, RouterConfig, faiss_search
from junto.routers.scoring import FUSION_PRESETS, fusion_labels


class FusionConfig(RouterConfig):
    preset: Literal["performance", "balance", "cost"] = "performance"
    alpha: float | None = Field(None, ge=0, description="performance weight; default from the preset")
    beta: float | None = Field(None, ge=0, description="cost weight; default from the preset")
    seed: int = 1234

    @model_validator(mode="after")
    def _weights(self) -> FusionConfig:
        a, b = FUSION_PRESETS[self.preset]
        if self.alpha is None:
            self.alpha = a
        if self.beta is None:
            self.beta = b
        return self


class KNNConfig(FusionConfig):
    n_neighbors: int = Field(50, ge=1)


class MLPConfig(FusionConfig):
    hidden: int = Field(50, ge=1, description="hidden ReLU units")
    learning_rate: float = Field(0.001, gt=0)
    l2: float = Field(0.01, ge=0)
    max_iter: int = Field(500, ge=1)


class SVMConfig(FusionConfig):
    C: float = Field(1.0, gt=0)
    max_iter: int = Field(2000, ge=1)


class _FusionRouter(Router):
    def _labels(self, scores: np.ndarray) -> np.ndarray:
        return fusion_labels(scores, self.cost_vector, self.config.alpha, self.config.beta)

    def _check_dim(self, emb: np.ndarray) -> None:
        if emb.shape[1] != self.meta["embedding_dim"]:
            from junto.errors import ConfigError

            raise ConfigError(f"query embedding has {emb.shape[1]} dimensions, the router expects "
                              f"{self.meta['embedding_dim']}", hint="embed with the router's own embedder")

    def with_alpha(self, alpha: float, beta: float | None = None) -> _FusionRouter:
        raise NotImplementedError


class KNNRouter(_FusionRouter):
    """Mean reward of each model over the query's nearest training queries."""

    method = "knn"
    Config = KNNConfig

    @classmethod
    def _fit(cls, records: Records, emb: np.ndarray, costs: np.ndarray, cfg: KNNConfig):
        return {"vectors": emb.astype(np.float32), "train_scores": records.scores.astype(np.float32)}, {}

    def _setup(self) -> None:
        import faiss

        vecs = np.ascontiguousarray(self.arrays["vectors"], dtype=np.float32)
        self.index = faiss.IndexFlatIP(vecs.shape[1])
        self.index.add(vecs)
        self.labels = self._labels(self.arrays["train_scores"].astype(np.float64))
        self.k = min(self.config.n_neighbors, len(vecs))

    def with_alpha(self, alpha: float, beta: float | None = None) -> KNNRouter:
        beta = 1.0 - alpha if beta is None else beta
        meta = {**self.meta, "config": {**self.meta["config"], "alpha": float(alpha), "beta": float(beta)}}
        return KNNRouter(meta, self.arrays, self.path)

    def _scores(self, emb: np.ndarray):
        self._check_dim(emb)
        sims, ids = faiss_search(self.index, emb, self.k)
        scores = self.labels[ids].mean(axis=1)
        details = [{"neighbors": int(self.k), "nearest_similarity": float(sims[i, 0])} for i in range(len(emb))]
        return scores, details


class MLPRouter(_FusionRouter):
    """A small MLP regressor predicting every model's reward from the embedding (one output per model)."""

    method = "mlp"
    Config = MLPConfig

    @classmethod
    def _fit(cls, records: Records, emb: np.ndarray, costs: np.ndarray, cfg: MLPConfig):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        y = fusion_labels(records.scores, costs, cfg.alpha, cfg.beta)
        mlp = MLPRegressor(hidden_layer_sizes=(cfg.hidden,), activation="relu", learning_rate_init=cfg.learning_rate,
                           alpha=cfg.l2, max_iter=cfg.max_iter, early_stopping=len(emb) >= 20,
                           validation_fraction=0.1, random_state=cfg.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit(emb, y)
        return {"w1": mlp.coefs_[0].astype(np.float32), "b1": mlp.intercepts_[0].astype(np.float32),
                "w2": mlp.coefs_[1].astype(np.float32), "b2": mlp.intercepts_[1].astype(np.float32)}, {}

    def _setup(self) -> None:
        self.w1 = self.arrays["w1"].astype(np.float32)  # dim × H
        self.b1 = self.arrays["b1"].astype(np.float32)  # H
        self.w2 = self.arrays["w2"].astype(np.float32)  # H × M
        self.b2 = self.arrays["b2"].astype(np.float32)  # M

    def _scores(self, emb: np.ndarray):
        self._check_dim(emb)
        h = np.maximum(emb @ self.w1 + self.b1[None], 0.0)
        scores = h @ self.w2 + self.b2[None]
        return scores.astype(np.float64), [{} for _ in range(len(emb))]


class SVMRouter(_FusionRouter):
    """One linear support-vector regressor per model."""

    method = "svm"
    Config = SVMConfig

    @classmethod
    def _fit(cls, records: Records, emb: np.ndarray, costs: np.ndarray, cfg: SVMConfig):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.svm import LinearSVR

        y = fusion_labels(records.scores, costs, cfg.alpha, cfg.beta)
        coef, icpt = [], []
        for j in range(y.shape[1]):
            svr = LinearSVR(C=cfg.C, random_state=cfg.seed, max_iter=cfg.max_iter, dual="auto")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                svr.fit(emb, y[:, j])
            coef.append(svr.coef_.ravel())
            icpt.append(float(np.ravel(svr.intercept_)[0]))
        return {"coef": np.stack(coef).astype(np.float32), "intercept": np.asarray(icpt, dtype=np.float32)}, {}

    def _setup(self) -> None:
        self.coef = self.arrays["coef"].astype(np.float32)
        self.intercept = self.arrays["intercept"].astype(np.float32)

    def _scores(self, emb: np.ndarray):
        self._check_dim(emb)
        scores = emb @ self.coef.T + self.intercept[None]
        return scores.astype(np.float64), [{} for _ in range(len(emb))]

