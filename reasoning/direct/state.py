"""Typed state and parameters of the ``direct`` strategy."""

from __future__ import annotations

from typing import Any, TypedDict

from junto.reasoning.common import CallRecord, StrategyParams, StrategyResult


class DirectParams(StrategyParams):
    """One answer from the best-ranked deployment; only sampling parameters."""


class DirectState(TypedDict, total=False):
    messages: list[dict[str, Any]]
    params: DirectParams
    started: float
    text: str
    reasoning: str | None
    thinking_truncated: bool
    deployment: str
    finish_reason: str | None
    ttft_s: float | None
    fallbacks: list[dict[str, str]]
    calls: list[CallRecord]
    result: StrategyResult
