"""What a registered strategy is: a name, its compiled graph, its parameters model, how to start it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from junto.reasoning.context import RunContext


@dataclass(frozen=True)
class Strategy:
    name: str
    #: the compiled LangGraph graph (a module-level value of the strategy's graph.py)
    graph: Any
    params_model: type[BaseModel]
    #: builds the graph's input state from (context, messages, validated params)
    make_input: Callable[[RunContext, list[dict[str, Any]], Any], dict[str, Any]]
    summary: str
    #: the paper and its published defaults (the strategy package's docstring)
    doc: str = ""
    #: reads or writes the experience memory (``RunContext.memory``): the fronts open it only for such strategies
    uses_memory: bool = False
