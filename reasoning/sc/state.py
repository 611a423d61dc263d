"""Typed state and parameters of the ``sc`` (self-consistency) strategy."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from pydantic import Field

from junto.reasoning.common import CallRecord, Sample, StrategyResult, VotingParams
from junto.reasoning.voting import StopRule


class SCParams(VotingParams):
    """Self-consistency: ``samples`` completions at ``temperature``, majority vote over their answers."""

    samples: int = Field(8, ge=1, le=256, description="samples to draw at most (k)")
    temperature: float | None = Field(0.7, ge=0.0, le=2.0)
    early_stop: StopRule = Field("unbeatable", description="none, unbeatable (same answer as all k), beta (adaptive)")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="beta rule: stop when P(leader is best) ≥ this")
    min_samples: int = Field(1, ge=1, description="never stop early before this many samples")
    batch: int | None = Field(None, ge=1, description="samples per round; default: all at once when nothing can "
                                                          "stop early (no rule, token budget or deadline), else "
                                                          "the deployment's max_concurrency")


class SampleTask(TypedDict):
    """The payload of one ``Send`` to the sample node."""

    deployment: str
    indices: list[int]
    messages: list[dict[str, Any]]
    params: SCParams
    started: float


class SCState(TypedDict, total=False):
    messages: list[dict[str, Any]]
    params: SCParams
    started: float
    deployment: str       # the deployment sampled now (the first candidate, or a fallback)
    budget: int
    drawn: int
    rounds: int
    stop: str | None
    samples: Annotated[list[Sample], operator.add]
    calls: Annotated[list[CallRecord], operator.add]
    pending: list[list[int]]
    #: calls already looked at by ``plan`` (the ones after it are the last round's)
    seen_calls: int
    #: deployments given up on because they yielded no sample: {deployment, error, to}
    fallbacks: list[dict[str, Any]]
    result: StrategyResult
