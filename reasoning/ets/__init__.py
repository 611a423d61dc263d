"""``ets``: step-level tree search that keeps the search diverse and the retained tree's KV small.

Paper: Hooper et al., "ETS: Efficient Tree Search for Inference-Time Scaling" (arXiv 2502.13575, 2025;
reference code SqueezeAILab/ETS, an SGLang fork). The policy model writes a solution one *step* at a
time (a step ends at a blank line or a token cap); a process-reward scorer rates each new step; a
selection decides which partial solutions to keep and how many children each gets. ETS's selection
solves an integer program that trades REBASE's outcome weights against the KV cache the kept tree
holds (shared prefixes counted once) and a coverage bonus for keeping semantically different steps
(clusters of the steps' embeddings), then deals the width among the kept nodes as REBASE does. Its
baseline, **REBASE** (Wu et al., "Inference Scaling Laws", arXiv 2408.00724), deals the width by a
softmax of the step scores; strategy ``rebase`` is the very same search with that selection
(``selection="rebase"``). Final answer: a vote over the finished leaves, each weighted by its last
step's score (:mod:`junto.reasoning.voting`, answers read by :mod:`junto.answers`).

Published defaults: 256 tokens per step, temperature 1.0, REBASE softmax temperature 0.2, λc = 1.0,
λs ≈ 1.45 (the paper's tuned diversity weight), step clusters cut at cosine distance 0.05, widths
16–256, a math PRM as the scorer. Defaults here fit a CPU pool: ``width=4``, ``max_depth=6``,
``step_tokens=128``, ``path_tokens=1024``, temperature 1.0, T = 0.2, λc = 1.0, λs = 1.45, distance
0.05, the static embedder (``junto.routers.embeddings``; the reference uses a math BERT), and the
``arith`` scorer (:mod:`junto.reasoning.ets.scorers`: ``judge`` and ``prm`` are the model-based ones).
Pure logic: :mod:`~junto.reasoning.ets.tree` (the tree and its KV accounting) and
:mod:`~junto.reasoning.ets.select` (REBASE, the ILP, clustering); I/O: :mod:`~junto.reasoning.ets.search`.
"""

from __future__ import annotations

import time

from junto.reasoning.base import Strategy
from junto.reasoning.ets.graph import graph
from junto.reasoning.ets.state import ETSParams


def make_input(ctx, messages, params: ETSParams) -> dict:
    msgs = list(messages)
    if params.system and not any(m.get("role") == "system" for m in msgs):
        msgs = [{"role": "system", "content": params.system}, *msgs]
    width = params.width if ctx.max_samples is None else max(1, min(params.width, ctx.max_samples))
    first = next((c for c in ctx.candidates if ctx.health is None or ctx.health.available(c)), ctx.candidates[0])
    from junto.reasoning.ets.tree import root

    return {"messages": msgs, "params": params, "started": time.monotonic(), "deployment": first,
            "nodes": [root()], "frontier": [[0, width]], "depth": 0, "width_left": width, "steps": [],
            "stop": None}


STRATEGY = Strategy(name="ets", graph=graph, params_model=ETSParams, make_input=make_input,
                    summary="ETS: step tree search, an ILP keeps diverse steps that share KV", doc=__doc__ or "")
