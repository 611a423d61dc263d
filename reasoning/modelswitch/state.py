"""Typed state and parameters of the ``modelswitch`` strategy."""

from __future__ import annotations

import math
import operator
from typing import Annotated, Any, Literal, TypedDict

from pydantic import Field, field_validator, model_validator

from junto.reasoning.common import CallRecord, Sample, StrategyResult, VotingParams


class ModelSwitchParams(VotingParams):
    """ModelSwitch: the top ``models`` routed deployments sample ``samples`` each; vote with a consistency switch."""

    samples: int = Field(5, ge=1, le=256, description="samples per model (k)")
    models: int = Field(2, ge=1, le=8, description="how many of the ranked candidates take part")
    threshold: float = Field(0.8, gt=0.0, le=1.0,
                             description="a model is consistent when its top answer holds at least this share of "
                                         "its samples; the first consistent model ends the switching")
    mode: Literal["parallel", "sequential"] = Field(
        "parallel", description="parallel: all models sample at once; sequential: the next model only when needed")
    vote: Literal["plain", "entropy"] = Field(
        "plain", description="pooled vote: one vote per sample, or each model's votes weighted by its consistency")
    prior_weights: list[float] | None = Field(
        None, description="one prior weight per model taking part, in rank order, multiplying its votes "
                          "(default 1 each)")
    temperature: float | None = Field(0.7, ge=0.0, le=2.0)

    @field_validator("prior_weights")
    @classmethod
    def _positive(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(not math.isfinite(w) or w <= 0 for w in v)):
            raise ValueError("prior weights must be finite and positive, at least one")
        return v

    @model_validator(mode="after")
    def _one_prior_per_model(self) -> ModelSwitchParams:
        if self.prior_weights is not None and len(self.prior_weights) != self.models:
            raise ValueError(f"prior_weights needs one weight per model: models={self.models}, "
                             f"got {len(self.prior_weights)}")
        return self


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
    #: the models taking part, best-ranked first (a model that yields nothing is replaced by a spare)
    models: list[str]
    #: ranked candidates not taking part yet: replacements for a model that yields no sample
    spare: list[str]
    per_model: int
    budget: int
    dispatched: int       # models[:dispatched] have been asked for their samples
    next_index: int       # the next sample number to hand out
    pending: list[tuple[str, list[int]]]
    stop: str | None
    samples: Annotated[list[Sample], operator.add]
    calls: Annotated[list[CallRecord], operator.add]
    seen_calls: int
    #: models given up on because they yielded no sample: {deployment, error, to (the replacement or None)}
    fallbacks: list[dict[str, Any]]
    result: StrategyResult
