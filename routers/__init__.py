"""Routers: choose which deployments answer a query.

Public API (imported lazily, so ``import junto.routers`` stays cheap)::

    from junto.routers import load_router
    router = load_router("routers/my-router")          # a directory written by `junto route fit`
    decision = router.route("What is 17 * 23?", candidates=["qwen", "gemma"])
    decision.chosen, decision.ranked, decision.latency_ms, decision.details
    router.route_batch([...]); router.models
    router.blocking      # True: the embedder is torch (minilm/st:...) → route in asyncio.to_thread
    router.warm()        # load the embedder now (blocking; do it at start-up)

Routing embeds the query in memory and writes nothing to disk; the on-disk embedding cache serves
batch work (fit, eval) only.

Methods (registered by name): ``avengers``, ``avengers-pro`` (junto.routers.avengers) and
``knn``, ``mlp``, ``svm`` (junto.routers.fusion, FusionFactory's query-level routers).
"""

from __future__ import annotations

from typing import Any

__all__ = ["METHODS", "Records", "Router", "RoutingDecision", "fit_router", "load_pool_router", "load_records",
           "load_router", "pool_router_candidates"]


def __getattr__(name: str) -> Any:
    if name in ("Router", "RoutingDecision", "Records", "load_router", "load_records", "METHODS", "load_pool_router",
                "pool_router_candidates"):
        from junto.routers import base

        return getattr(base, name)
    if name == "fit_router":
        from junto.routers.fit import fit_router

        return fit_router
    raise AttributeError(f"module 'junto.routers' has no attribute {name!r}")
