"""``modelswitch``: multi-model repeated sampling with a consistency switch.

Paper: Chen et al., "Do We Truly Need So Many Samples? Multi-LLM Repeated Sampling Efficiently
Scales Test-Time Compute" (arXiv 2504.00762, 2025; code JianhaoChen-nju/ModelSwitch). Published
form: models are sampled in turn (5 samples each in the released scripts); when a model's answers
are consistent — its top answer holds ≥ ``ConsistencyThreshold`` of its samples (1 in the scripts,
i.e. unanimous) — sampling stops, else it switches to the next model. The final answer is a vote
over every sample drawn, answer ``a`` scoring ``Σ_m count_m(a) × w_m × π_m``: ``π_m`` a prior weight
per model and ``w_m = b + (1 - b)(1 - H_m / log d_m)`` the model's consistency weight, with ``H_m``
the entropy of its valid answers, ``d_m`` the number of distinct ones (``w_m = 1`` when ``d_m = 1``)
and ``b = 1 / n_m`` for ``n_m`` valid answers (``calculate_scores_with_weights`` in the reference).

Defaults here follow the Avengers recipe's two-model use: the top ``models=2`` routed deployments
each sample ``samples=5`` at ``temperature=0.7`` (``mode="parallel"``); the first model whose top
answer holds ≥ ``threshold=0.8`` of its samples ends the switching — model 1 consistent: its answer
stands — otherwise the samples of the models up to it (all, when none is consistent) are pooled and
voted (``vote="plain"``, or ``"entropy"`` for the weights above; ``prior_weights`` gives ``π``, one
per model in rank order, default 1). ``mode="sequential"`` samples model 1 first and only asks the
next model while none is consistent (``threshold=1.0`` and ``vote="entropy"`` give the paper's
published setting). Invalid answers, samples cut by ``max_tokens`` (unless ``allow_truncated``) and
failed requests count as dissent; a model that yields no sample is replaced by the next-ranked
candidate when there is one.
"""

from __future__ import annotations

import time

from junto.reasoning.base import Strategy
from junto.reasoning.modelswitch.graph import graph
from junto.reasoning.modelswitch.state import ModelSwitchParams


def _input(ctx, messages, params: ModelSwitchParams) -> dict:
    ranked = list(dict.fromkeys(ctx.candidates))
    if ctx.health is not None:
        ranked = ctx.health.order(ranked)  # a pure look: the ones that may be called now first
    models, spare = ranked[:params.models], ranked[params.models:]
    per_model = params.samples
    if ctx.max_samples is not None:
        per_model = max(1, min(per_model, ctx.max_samples // len(models)))
    return {"messages": messages, "params": params, "started": time.monotonic(), "models": models, "spare": spare,
            "per_model": per_model, "budget": per_model * len(models), "dispatched": 0, "next_index": 0,
            "pending": [], "stop": None, "samples": [], "calls": [], "seen_calls": 0, "fallbacks": []}


STRATEGY = Strategy(name="modelswitch", graph=graph, params_model=ModelSwitchParams, make_input=_input,
                    summary="ModelSwitch: top-2 models sample k each; model 1 stands at ≥ 0.8 agreement, "
                            "else a pooled vote", doc=__doc__ or "")
