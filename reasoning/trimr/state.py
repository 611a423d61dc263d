"""Typed state and parameters of the ``trimr`` strategy."""

from __future__ import annotations

from typing import Any, TypedDict

from pydantic import Field

from junto.answers import AnswerKind
from junto.reasoning.common import StrategyParams, StrategyResult


class TrimRParams(StrategyParams):
    """TrimR: a reasoner thinks; the answer module and a small verifier watch and cut redundant reflection."""

    reasoner: str | None = Field(None, description="deployment that thinks (default: tagged 'reasoner', else the "
                                                   "best-ranked candidate)")
    verifier: str | None = Field(None, description="deployment asked whether a thought reached an answer when the "
                                                   "answer module is unsure (default: tagged 'verifier', else none)")
    use_verifier: bool = Field(True, description="ask a verifier deployment at all (false: the answer module only)")
    monitor: bool = Field(True, description="false: plain thinking on the same path, nothing watched (the baseline)")
    thinking_budget: int = Field(1024, ge=16, description="most thinking tokens")
    answer_tokens: int = Field(128, ge=1, description="most tokens for the answer after the thinking")
    consecutive: int = Field(2, ge=2, le=10, description="overthinking: this many consecutive thoughts with "
                                                         "equivalent answers stop the thinking (M)")
    under_fraction: float = Field(0.5, gt=0.0, le=1.0, description="underthinking: close the thinking once this "
                                                                   "share of the budget is spent without convergence")
    max_thoughts: int = Field(20, ge=1, description="underthinking: close after this many thoughts without convergence")
    repeat_window: int = Field(24, ge=4, description="repetition: words in the window the rolling hash covers")
    answer: AnswerKind = Field("auto", description="how to read an answer: auto, math, number, choice, text")
    temperature: float | None = Field(0.0, ge=0.0, le=2.0)


class TrimRState(TypedDict, total=False):
    messages: list[dict[str, Any]]
    params: TrimRParams
    started: float
    result: StrategyResult
