"""``modelswitch``: multi-model repeated sampling with a consistency switch.

Paper: Chen et al., "Do We Truly Need So Many Samples? Multi-LLM Repeated Sampling Efficiently
Scales Test-Time Compute" (arXiv 2504.00762, 2025; code JianhaoChen-nju/ModelSwitch). Published
form: models are sampled in turn (5 samples each in the released scripts); when a model's answers
are consistent (``ConsistencyThreshold`` 1, i.e. unanimous) sampling stops, else it switches to the
next model; the final answer is a vote over all samples with each model's votes weighted by its
consistency, ``1/n + (1 - 1/n)(1 - H/log n)`` with H the entropy of its answers.

Defaults here follow the Avengers recipe's two-model use: the top ``models=2`` routed deployments
each sample ``samples=5`` at ``temperature=0.7`` (``mode="parallel"``); if model 1's top answer
holds ≥ ``threshold=0.8`` of its votes it stands, otherwise all samples are pooled and voted
(``vote="plain"``, or ``"entropy"`` for the paper's weighting). ``mode="sequential"`` samples model
1 first and only asks model 2 when model 1 falls below the threshold (``threshold=1.0`` and
``vote="entropy"`` give the paper's published setting).
"""

from __future__ import annotations

import time

from junto.reasoning.base import Strategy
from junto.reasoning.modelswitch.graph import graph
from junto.reasoning.modelswitch.state import ModelSwitchParams


def _input(ctx, messages, params: ModelSwitchParams) -> dict:
    models = list(dict.fromkeys(ctx.candidates))[:params.models]
    per_model = params.samples
    if ctx.max_samples is not None:
        per_model = max(1, min(per_model, ctx.max_samples // len(models)))
    return {"messages": messages, "params": params, "started": time.monotonic(), "models": models,
            "per_model": per_model, "dispatched": 0, "pending": [], "stop": None, "samples": [], "calls": []}


STRATEGY = Strategy(name="modelswitch", graph=graph, params_model=ModelSwitchParams, make_input=_input,
                    summary="ModelSwitch: top-2 models sample k each; model 1 stands at ≥ 0.8 agreement, "
                            "else a pooled vote", doc=__doc__ or "")
