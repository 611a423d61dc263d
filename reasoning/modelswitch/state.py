"""Typed state and parameters of the ``modelswitch`` strategy."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from pydantic import Field

from junto.reasoning.common import CallRecord, Sample, StrategyResult, VotingParams


class ModelSwitchParams(VotingParams):
    """ModelSwitch: the top ``models`` routed deployments sample ``samples`` each; vote with a consistency switch."""

    samples: int = Field(5, ge=1, le=256, description="samples per model (k)")
    models: int = Field(2, ge=1, le=8, description="how many of the ranked candidates take part")
    threshold: float = Field(0.8, gt=0.0, le=1.0,
                             description="model 1's answer stands when it holds at least this share of its samples")
    mode: Literal["parallel", "sequential"] = Field(
        "parallel", description="parallel: all models sample at once; sequential: the next model only when needed")
    vote: Literal["plain", "entropy"] = Field(
        "plain", description="pooled vote: one vote per sample, or each model's votes weighted by its consistency")
    temperature: float | None = Field(0.7, ge=0.0, le=2.0)


class SampleTask(TypedDict):
    deployment: str
    indices: list[int]
    messages: list[dict[str, Any]]
    params: ModelSwitchParams
    started: float


class ModelSwitchState(TypedDict, total=False):
    messages: list[dict[str, Any]]
    params: ModelSwitchParams
    started: float
    models: list[str]
    per_model: int
    dispatched: int
    pending: list[tuple[str, list[int]]]
    stop: str | None
    samples: Annotated[list[Sample], operator.add]
    calls: Annotated[list[CallRecord], operator.add]
    result: StrategyResult
