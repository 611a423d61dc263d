"""``sc``: self-consistency — sample k reasoning paths, majority-vote their final answers.

Paper: Wang et al., "Self-Consistency Improves Chain of Thought Reasoning in Language Models"
(ICLR 2023). Published setting: 40 sampled paths, temperature 0.5–0.7 (T=0.7 for most models),
unweighted majority vote over the parsed final answers. Defaults here: ``samples=8``,
``temperature=0.7``, ``answer="auto"``; early stopping ``"unbeatable"`` (stop once no remaining
sample can change the winner: same answer as drawing all k) or ``"beta"`` (Adaptive-Consistency,
Aggarwal et al., EMNLP 2023: Beta stopping at confidence 0.95). ``weight="logprob"`` weighs votes
by each sample's mean token probability when the backend returns logprobs. A sample cut by
``max_tokens`` gets no vote unless ``allow_truncated=True``. A failed request does not fail the run:
the vote is taken on the samples obtained (stop reason ``backend_error``), and when the deployment
yields no sample at all the next-ranked candidate is sampled instead (a ``fallback`` event).
"""

from __future__ import annotations

import time

from junto.reasoning.base import Strategy
from junto.reasoning.sc.graph import graph
from junto.reasoning.sc.state import SCParams


def _input(ctx, messages, params: SCParams) -> dict:
    budget = params.samples if ctx.max_samples is None else max(1, min(params.samples, ctx.max_samples))
    # the best-ranked candidate that may be called now (a pure look: nothing is claimed here)
    first = next((c for c in ctx.candidates if ctx.health is None or ctx.health.available(c)), ctx.candidates[0])
    return {"messages": messages, "params": params, "started": time.monotonic(), "deployment": first,
            "budget": budget, "drawn": 0, "rounds": 0, "samples": [], "calls": [], "stop": None, "seen_calls": 0,
            "fallbacks": []}


STRATEGY = Strategy(name="sc", graph=graph, params_model=SCParams, make_input=_input,
                    summary="self-consistency: k samples, majority vote, early stopping", doc=__doc__ or "")
