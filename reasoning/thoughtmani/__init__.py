"""``thoughtmani``: a small model writes the plan; the reasoning model's thinking is prefilled with it.

Paper: Liu et al., "Thought Manipulation: External Thought Can Be Efficient for Large Reasoning
Models" (arXiv 2504.13626, 2025; no code published). A small instruct model is asked for the key
points of a solution — high-level ideas, no calculations, no final answer — ending with ``<STOP>``,
or only ``<STOP>`` when it cannot help. Its thoughts are placed between the reasoning model's
thinking tokens, ``<think>\\n{thoughts}\\n</think>``, as the prefilled start of its reply; the
reasoning model then skips most of its own thinking and writes the answer (the paper reports ~30 %
fewer output tokens at the same accuracy on QwQ-32B / LiveBench-Code). When the planner stops
without thoughts the reasoning model reasons normally — here on the plain-thinking path TrimR's
baseline takes (:func:`junto.reasoning.trimr.run.think`, monitoring off).

Roles (:mod:`junto.reasoning.trimr.roles`): ``planner`` / ``reasoner`` parameters, else the pool's
deployments tagged ``planner`` / ``reasoner``, else the router's ranking (reasoner: the best-ranked
candidate; planner: the last-ranked other one). Defaults: ``plan_tokens=256``,
``answer_tokens=512``, ``temperature=0`` (greedy, as the paper's evaluation), the deployment's
thinking tags (``thinking:`` in the pool file; ``<think>``/``</think>`` otherwise).
"""

from __future__ import annotations

import time

from junto.reasoning.base import Strategy
from junto.reasoning.thoughtmani.graph import graph
from junto.reasoning.thoughtmani.state import ThoughtManiParams


def _input(ctx, messages, params: ThoughtManiParams) -> dict:
    return {"messages": messages, "params": params, "started": time.monotonic()}


STRATEGY = Strategy(name="thoughtmani", graph=graph, params_model=ThoughtManiParams, make_input=_input,
                    summary="ThoughtMani: a small planner's thoughts prefill the reasoner's thinking",
                    doc=__doc__ or "")
