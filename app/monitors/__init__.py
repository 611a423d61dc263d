"""Lightweight sequential monitors against decomposition attacks (arXiv 2506.10949, Chen et al., 2025).

A decomposition attack splits a harmful goal into requests that each look harmless. A *sequential* monitor reads
the cumulative list of a conversation's user requests on every turn, before the model is called, and flags the
conversation once the list, taken together, pursues a harmful goal. Modules, one per part:

* ``base``: the :class:`Monitor` interface (``await monitor.score(requests) -> Verdict``) and :func:`numbered`.
* ``classifier``: logistic regression over static (model2vec) embeddings of the request list (milliseconds).
* ``prompted``: a pool model reads the numbered request list; P(harmful) from its one-token verdict's logprobs.
* ``cascade``: the classifier first, the prompted monitor only inside the classifier's unsure band.
* ``identity``: which conversation a request belongs to (header, ``user``/``metadata``, or the resent history).
* ``policy``: block / flag / log per API key or model, and the OpenAI-shaped refusal.
* ``guard``: the runtime: state per conversation in a :class:`junto.stores.ConversationStore`, bounded and expiring.
* ``evaluate``: the labelled set (configs/datasets/monitor), metrics (F1, defense rate, FPR) and threshold tuning.

Turned on by ``monitor:`` in the junto config (:class:`junto.config.MonitorSettings`); see docs/monitors.md.
"""

from __future__ import annotations

from junto.monitors.base import Monitor, Verdict, numbered
from junto.monitors.guard import Decision, Guard, build_guard

__all__ = ["Decision", "Guard", "Monitor", "Verdict", "build_guard", "numbered"]
