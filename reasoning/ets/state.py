"""Typed state and parameters of the ``ets`` and ``rebase`` strategies (one code path, two selections)."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from pydantic import Field, field_validator

from junto.answers import AnswerKind
from junto.reasoning.common import StrategyParams, StrategyResult
from junto.reasoning.ets.scorers import ScorerSpec
from junto.reasoning.ets.tree import Node

#: the step boundary: a blank line (the paper's Llama prompt separates steps with one)
STEP_DELIMITER = "\n\n"

#: the system prompt that makes the policy model write one step per paragraph and state its answer
SYSTEM_PROMPT = ("Solve the problem step by step. Write each step as one short paragraph and separate steps "
                 "with a blank line. In each step do one calculation and write it out, e.g. 3 * 4 = 12. When "
                 "you are done, write the final step as: The answer is: <number>.")


class ETSParams(StrategyParams):
    """Step-level tree search: expand frontier nodes by one step, score the steps, select, repeat."""

    selection: Literal["ets", "rebase"] = Field("ets", description="ets (the ILP, then REBASE) or rebase (softmax)")
    width: int = Field(4, ge=1, le=512, description="search width: root children, and paths kept at once")
    max_depth: int = Field(6, ge=1, le=64, description="most steps on a path")
    step_tokens: int = Field(128, ge=4, le=4096, description="token cap of one step (the paper: 256)")
    path_tokens: int = Field(1024, ge=8, description="token cap of one whole path: it is finished there")
    temperature: float | None = Field(1.0, ge=0.0, le=2.0, description="sampling temperature (the paper: 1.0)")
    softmax_temperature: float = Field(0.2, gt=0.0, le=10.0, description="REBASE's softmax temperature T")
    lambda_c: float = Field(1.0, ge=0.0, le=100.0, description="ETS: weight of the KV cost term")
    lambda_s: float = Field(1.45, ge=0.0, le=100.0, description="ETS: weight of the diversity (coverage) term")
    cluster_distance: float = Field(0.05, gt=0.0, lt=2.0, description="ETS: cosine distance where clusters are cut")
    embedder: str = Field("static", description="step embedder for ETS clustering (junto.routers.embeddings spec: "
                                                "static, minilm, st:<path>, m2v:<path>)")
    scorer: ScorerSpec = Field(default_factory=ScorerSpec,
                               description="the step scorer: {kind: arith | judge | prm, deployment: ...}")
    system: str | None = Field(SYSTEM_PROMPT, description="system prompt added before the question (None: none)")
    answer: AnswerKind = Field("auto", description="how to read an answer: auto, math, number, choice, text")

    @field_validator("scorer", mode="before")
    @classmethod
    def _scorer_name(cls, v: Any) -> Any:
        return {"kind": v} if isinstance(v, str) else v


class ETSState(TypedDict, total=False):
    messages: list[dict[str, Any]]
    params: ETSParams
    started: float
    deployment: str
    nodes: list[Node]
    #: (node id, children to sample from it) for the next expansion
    frontier: list[list[int]]
    depth: int
    #: width not yet given to a finished path
    width_left: int
    #: per depth: what the selection did (the events' payloads)
    steps: list[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cached_reported: bool
    failed: int
    errors: list[dict[str, Any]]
    stop: str | None
    result: StrategyResult
