"""junto's reasoning layer: test-time strategies as LangGraph graphs, selected by name.

    from junto.reasoning import RunContext, run_strategy, stream_strategy
    ctx = RunContext(client=client, pool=pool, candidates=["smollm2-135m"], max_samples=None,
                     max_tokens=64, deadline_s=None)
    result = await run_strategy("sc", ctx, [{"role": "user", "content": "2+3?"}], {"samples": 5})

Strategies: ``direct``, ``sc`` (self-consistency), ``modelswitch``. Each lives in its own
subpackage (``state.py``: typed state and pydantic parameters; ``graph.py``: nodes and the
compiled ``graph``), takes its runtime dependencies from :class:`RunContext` through LangGraph's
``context_schema``, and reports progress through LangGraph's custom stream mode.
"""

from junto.reasoning.common import StrategyResult
from junto.reasoning.context import RunContext
from junto.reasoning.registry import (get_strategy, register, run_strategy, strategy_names, stream_strategy,
                                      validate_params)

__all__ = ["RunContext", "StrategyResult", "get_strategy", "register", "run_strategy", "strategy_names",
           "stream_strategy", "validate_params"]
