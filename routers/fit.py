"""Fitting and evaluating routers on routing records (the I/O around the pure scoring code)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from junto.errors import ConfigError
from junto.routers.base import Records, Router, router_class
from junto.routers.embeddings import embed, get_embedder
from junto.routers.scoring import evaluate_choices

Progress = Callable[[int, int], None]


def fit_router(records: Records, method: str, *, costs: dict[str, float] | None = None,
               embedder: str | dict[str, Any] | None = None, options: dict[str, Any] | None = None,
               progress: Progress | None = None, status: Callable[[str], None] | None = None) -> Router:
    """Embed the records' questions (cached) and fit a router of ``method``."""
    cls = router_class(method)
    if len(records) < 2:
        raise ConfigError(f"{len(records)} record(s) is too few to fit a router", hint="give at least a handful of records")
    costs = costs or {m: 1.0 for m in records.models}
    emb_model = get_embedder(embedder, progress=status)
    vectors = embed(records.questions, emb_model, progress=progress)
    return cls.fit(records, vectors, costs, embedder_spec=emb_model.spec, config=options or {})


def evaluate_router(router: Router, records: Records, progress: Progress | None = None) -> dict[str, Any]:
    """Accuracy and cost of the router's choices on ``records`` beside random, best single and oracle."""
    recs = records.select_models(router.models)
    if router.best_single not in router.models:  # pragma: no cover - artifacts always carry it
        raise ConfigError("the router artifact names no best single model", hint="refit the router")
    vectors = embed(recs.questions, router.embedder, progress=progress)
    chosen = router.choose_indices(vectors)
    res = evaluate_choices(chosen, recs.scores, router.cost_vector, router.models.index(router.best_single))
    counts = np.bincount(chosen, minlength=len(router.models))
    res["best_single_model"] = router.best_single
    res["choices"] = {m: int(c) for m, c in zip(router.models, counts) if c}
    return res
