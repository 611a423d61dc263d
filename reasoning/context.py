"""The runtime context every strategy graph receives through LangGraph's ``context_schema``.

Nothing a graph needs at run time (client, pool, candidates, budgets) is global: the caller builds a
:class:`RunContext` per request and LangGraph hands it to each node as ``runtime.context``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from junto.health import HealthTracker
from junto.pool.client import PoolClient
from junto.pool.config import Pool


@dataclass
class RunContext:
    """Per-request dependencies and budgets of a strategy run.

    ``candidates``: deployment names ranked best first by the router (or ``[pool default]``); a
    strategy falls back along this list when a deployment yields nothing.
    ``max_samples``: cap on samples drawn, over all models. ``max_tokens``: cap on tokens per sample.
    ``deadline_s``: wall-clock budget for the whole run, in seconds from its start.
    ``health``: the caller's :class:`~junto.health.HealthTracker`, or ``None``. When set, every model
    call of the run claims a permit right before it is sent (a half-open deployment's single probe
    only when it is really called) and reports its outcome, failures included.
    ``passthrough``: sampling fields every model call carries unchanged (e.g. ``presence_penalty``)
    that the strategy's parameters do not declare.
    ``memory`` and ``router``: optional services later strategies use (opaque here).
    """

    client: PoolClient
    pool: Pool
    candidates: list[str]
    max_samples: int | None = None
    max_tokens: int | None = None
    deadline_s: float | None = None
    memory: Any = None
    router: Any = None
    health: HealthTracker | None = None
    passthrough: dict[str, Any] = field(default_factory=dict)
