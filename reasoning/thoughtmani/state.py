"""Typed state and parameters of the ``thoughtmani`` strategy."""

from __future__ import annotations

from typing import Any, TypedDict

from pydantic import Field

from junto.answers import AnswerKind
from junto.reasoning.common import StrategyParams, StrategyResult


class ThoughtManiParams(StrategyParams):
    """ThoughtMani: a small planner writes the thoughts, the reasoner's thinking is prefilled with them."""

    planner: str | None = Field(None, description="deployment that writes the plan (default: tagged 'planner', "
                                                  "else the last-ranked candidate)")
    reasoner: str | None = Field(None, description="deployment that answers (default: tagged 'reasoner', else the "
                                                   "best-ranked candidate)")
    plan_tokens: int = Field(256, ge=8, description="most tokens of the plan")
    answer_tokens: int = Field(512, ge=1, description="most tokens the reasoner writes after the prefilled plan")
    thinking_budget: int = Field(1024, ge=16, description="most thinking tokens when the planner gives up")
    answer: AnswerKind = Field("auto", description="how to read an answer: auto, math, number, choice, text")
    temperature: float | None = Field(0.0, ge=0.0, le=2.0)


class ThoughtManiState(TypedDict, total=False):
    messages: list[dict[str, Any]]
    params: ThoughtManiParams
    started: float
    planner: str
    reasoner: str
    plan: str | None
    plan_usage: dict[str, Any]
    result: StrategyResult
