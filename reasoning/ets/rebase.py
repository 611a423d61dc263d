"""``rebase``: REBASE, reward-balanced step tree search — ETS's baseline, on ETS's code path.

Paper: Wu et al., "Inference Scaling Laws: An Empirical Analysis of Compute-Optimal Inference for
Problem-Solving with Language Models" (arXiv 2408.00724, ICLR 2025). Each depth, the unfinished
nodes' step scores become softmax weights (temperature 0.2) and the width left is dealt in
proportion (:func:`junto.reasoning.ets.select.rebase_allocate` documents the rounding). Everything
else — step sampling, scoring, finishing, the score-weighted vote — is :mod:`junto.reasoning.ets`'s;
only ``selection`` differs (here ``"rebase"``). Defaults as for ``ets``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from junto.reasoning.base import Strategy
from junto.reasoning.ets import make_input
from junto.reasoning.ets.graph import graph
from junto.reasoning.ets.state import ETSParams


class RebaseParams(ETSParams):
    """REBASE: the ETS search with the softmax selection (``selection`` may still be set to ``ets``)."""

    selection: Literal["ets", "rebase"] = Field("rebase", description="rebase (softmax) or ets (the ILP)")


STRATEGY = Strategy(name="rebase", graph=graph, params_model=RebaseParams, make_input=make_input,
                    summary="REBASE: step tree search, width dealt by softmax of step scores", doc=__doc__ or "")
