"""``trimr``: watch a reasoning model think and cut its redundant reflection.

Paper: "TrimR: Verifier-based Training-Free Thinking Compression for Efficient Test-Time Scaling"
(arXiv 2505.17155, 2025; no code published). The thinking stream is cut into thoughts at reflection
markers ("Wait", "But", "Alternatively", "Hmm") and blank lines; after each thought a small verifier
judges whether it reached an answer and whether that answer equals the previous one. Published
decisions and defaults, kept here: **overthinking** — M = 2 consecutive thoughts with equivalent
answers stop the thinking, and a short closing prompt leads to the final answer; **underthinking** —
after 50 % of the thinking budget or 20 thoughts without convergence the thinking is closed and the
answer asked for; **repetition** loops are caught by a rolling hash (here over word hashes of the
stream: llama.cpp streams no token ids). The verifier runs asynchronously beside decoding, one
verifier serving many concurrent reasoners.

Here the answer module (:mod:`junto.answers`) checks each thought first; the verifier deployment
(prefill-only: one generated token, P(Yes) vs P(No) from its top logprobs) is asked only about
thoughts that have numbers but state no answer. Without a verifier (none tagged or named, or
``use_verifier=false``) the answer module alone decides and only stated answers count (a thought's
last value may be an intermediate step's: two equal step values in a row must not cut the thinking). ``monitor=false`` runs plain thinking on the very same path: the fair baseline.
Defaults: ``thinking_budget=1024``, ``answer_tokens=128``, ``consecutive=2``,
``under_fraction=0.5``, ``max_thoughts=20``, ``temperature=0``. Pure logic:
:mod:`junto.reasoning.trimr.logic`; offline replay over recorded traces:
:mod:`junto.reasoning.trimr.offline` (``junto eval-trimr FILE``).
"""

from __future__ import annotations

import time

from junto.reasoning.base import Strategy
from junto.reasoning.trimr.graph import graph
from junto.reasoning.trimr.state import TrimRParams


def _input(ctx, messages, params: TrimRParams) -> dict:
    return {"messages": messages, "params": params, "started": time.monotonic()}


STRATEGY = Strategy(name="trimr", graph=graph, params_model=TrimRParams, make_input=_input,
                    summary="TrimR: a verifier watches the thinking and cuts redundant reflection",
                    doc=__doc__ or "")
