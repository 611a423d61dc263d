"""``direct``: one answer from the best-ranked deployment, streamed token by token.

No paper: the baseline every test-time strategy is measured against (greedy decoding when
``temperature=0``). Defaults: the backend's sampling settings; ``max_tokens`` from the run context.
Tokens arrive as ``{"type": "token", "text": ...}`` events; before the first token a retryable
failure falls back to the next candidate deployment. The work is done by
:func:`junto.reasoning.direct.run.answer_direct`, the one ``direct`` implementation (the facade's
hot path calls it too, without a graph).
"""

from __future__ import annotations

import time

from junto.reasoning.base import Strategy
from junto.reasoning.direct.graph import graph
from junto.reasoning.direct.state import DirectParams


def _input(ctx, messages, params: DirectParams) -> dict:
    return {"messages": messages, "params": params, "started": time.monotonic()}


STRATEGY = Strategy(name="direct", graph=graph, params_model=DirectParams, make_input=_input,
                    summary="one streamed answer from the best-ranked deployment", doc=__doc__ or "")
