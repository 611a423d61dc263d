"""The lightweight monitor: logistic regression over static embeddings of the cumulative request list.

The "lightweight sequential monitor" of arXiv 2506.10949 is a prompted small LLM; this one is lighter still, in
the spirit of the paper's cost argument: each request is embedded with junto's static model2vec embedder
(``junto.routers.embeddings``, ``static``: a token lookup and a mean, ~0.1 ms) and the list is summarised by the
element-wise mean and max of its request vectors, so that one harmful-looking step and a drift of the whole list
both show. scikit-learn's ``LogisticRegression`` (defaults: L2, C=1.0; ``class_weight="balanced"``) is fitted
on every prefix of the training conversations (``fit``); inference is a dot product in numpy, so serving needs
neither scikit-learn nor torch. The artifact is JSON (weights, embedder, threshold and how it was trained):
``configs/monitors/classifier.json``, trained by ``python -m junto.monitors.train``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from junto.errors import ConfigError
from junto.monitors.base import Monitor, Verdict, clip, configs_dir

DEFAULT_ARTIFACT = configs_dir() / "monitors" / "classifier.json"


def features(vectors: np.ndarray) -> np.ndarray:
    """``[mean, max]`` of the request vectors (rows) — one feature vector for the whole list."""
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError("features need at least one request vector")
    return np.concatenate([vectors.mean(axis=0), vectors.max(axis=0)])


def prefix_label(attack_steps: Sequence[int], upto: int) -> int | None:
    """Training label of the prefix ``requests[:upto]`` of a conversation: 1 once two attack steps are in it,
    0 with none, None (left out of training: ambiguous) with exactly one."""
    seen = sum(1 for s in attack_steps if s < upto)
    return 1 if seen >= 2 else 0 if seen == 0 else None


class ClassifierMonitor(Monitor):
    name = "classifier"

    def __init__(self, artifact: str | Path | None = None, threshold: float | None = None, embedder: Any = None):
        path = Path(artifact) if artifact else DEFAULT_ARTIFACT
        try:
            data = json.loads(path.read_text())
            self.coef = np.asarray(data["coef"], dtype=np.float32)
            self.intercept = float(data["intercept"])
            spec = data["embedder"]
            tuned = float(data["threshold"])
        except FileNotFoundError:
            raise ConfigError(f"monitor classifier artifact not found: {path}", param="monitor.classifier",
                              hint="train one: python -m junto.monitors.train (writes configs/monitors/classifier.json)"
                              ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: not a monitor classifier artifact ({exc})", param="monitor.classifier",
                              hint="retrain it: python -m junto.monitors.train") from None
        self.meta = {k: v for k, v in data.items() if k not in ("coef",)}
        if embedder is None:
            from junto.routers.embeddings import get_embedder

            embedder = get_embedder(spec)
        self.embedder = embedder
        if self.coef.shape[0] != 2 * embedder.dim:
            raise ConfigError(f"{path}: weights for {self.coef.shape[0] // 2}-d embeddings, embedder "
                              f"{spec!r} gives {embedder.dim}", hint="retrain: python -m junto.monitors.train")
        self.threshold = tuned if threshold is None else threshold

    def probability(self, requests: Sequence[str]) -> float:
        vecs = np.asarray(self.embedder.encode([clip(r) for r in requests]), dtype=np.float32)
        z = float(features(vecs) @ self.coef) + self.intercept
        return 1.0 / (1.0 + math.exp(-z)) if z > -60 else 0.0

    async def score(self, requests: Sequence[str]) -> Verdict:
        if not requests:
            raise ValueError("a monitor scores at least one request")
        p = self.probability(requests)  # ~0.1 ms a request: inline, not worth a thread hop
        return Verdict(p, p >= self.threshold, self.name)


def fit(conversations: Sequence[dict[str, Any]], embedder: Any, C: float = 1.0, seed: int = 0
        ) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Fit on every prefix of ``conversations`` (dataset rows); returns (coef, intercept, what was fitted)."""
    from sklearn.linear_model import LogisticRegression

    X, y = [], []
    for conv in conversations:
        reqs = conv["requests"]
        vecs = np.asarray(embedder.encode([clip(r) for r in reqs]), dtype=np.float32)
        for upto in range(1, len(reqs) + 1):
            label = prefix_label(conv.get("attack_steps") or [], upto) if conv["label"] else 0
            if label is not None:
                X.append(features(vecs[:upto]))
                y.append(label)
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000, random_state=seed)
    model.fit(np.asarray(X), np.asarray(y))
    info = {"prefixes": len(y), "positive_prefixes": int(sum(y)), "C": C, "class_weight": "balanced",
            "solver": model.solver}
    return model.coef_[0].astype(np.float32), float(model.intercept_[0]), info
