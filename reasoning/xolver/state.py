"""Typed state and parameters of the ``xolver`` strategy."""

from __future__ import annotations

from typing import Any, TypedDict

from pydantic import Field, model_validator

from junto.answers import AnswerKind
from junto.reasoning.common import StrategyParams, StrategyResult


class XolverParams(StrategyParams):
    """Xolver: planned agent roles, rounds over a shared store of judged answers, an experience memory."""

    agents: int = Field(2, ge=1, le=8, description="m, the agents per round (paper: 3)")
    rounds: int = Field(2, ge=1, le=8, description="I, the most rounds (paper: 2)")
    drafted: int | None = Field(None, ge=1, le=12, description="roles the planner drafts (default: agents + 2)")
    planner: str | None = Field(None, description="deployment that drafts the roles (default: tagged 'planner', "
                                                  "else the last-ranked candidate)")
    agent_models: list[str] | None = Field(None, min_length=1, description="deployments of the agents, agent i on "
                                                                           "entry i mod length (default: the "
                                                                           "best-ranked candidate)")
    judge: str | None = Field(None, description="LLM judge of non-code answers (default: tagged 'verifier', else "
                                                "the last-ranked candidate)")
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="an LLM judge's P(correct) that counts as verified")
    early_stop: bool = Field(True, description="stop after the round whose best answer is verified")
    memory_k: int = Field(2, ge=0, le=10, description="exemplars retrieved from the experience memory")
    memory_task: str | None = Field(None, description="retrieve only experiences of this task (default: any)")
    task: str | None = Field(None, description="task written with an experience (default: 'code' or 'general')")
    shared_k: int = Field(2, ge=0, le=10, description="top judged answers of the shared store shown to each agent")
    plan_tokens: int = Field(256, ge=16, description="most tokens of the planner's reply")
    answer: AnswerKind = Field("auto", description="how to read a non-code answer: auto, math, number, choice, text")
    context_chars: int = Field(4000, ge=500, description="characters of an agent's prompt shared by the exemplars, "
                                                         "the shared answers and its previous answer")
    sandbox_timeout_s: float = Field(10.0, gt=0, le=120, description="wall time of one code check")
    sandbox_memory_mb: int = Field(512, ge=64, description="address space of one code check")
    temperature: float | None = Field(0.7, ge=0.0, le=2.0)

    @model_validator(mode="after")
    def _check(self) -> XolverParams:
        if self.drafted is not None and self.drafted < self.agents:
            raise ValueError(f"drafted ({self.drafted}) must be at least agents ({self.agents}): the planner "
                             "picks the agents among the roles it drafts")
        return self


class XolverState(TypedDict, total=False):
    messages: list[dict[str, Any]]
    params: XolverParams
    started: float
    question: str
    #: code problems: the function prompt (signature + docstring), its entry point, its example tests
    code: bool
    prompt_code: str
    entry: str
    examples: list[list[str]]
    planner: str
    judge: str | None
    roles: list[dict[str, Any]]
    roles_info: dict[str, Any]
    plan_usage: dict[str, Any]
    hits: list[dict[str, Any]]
    #: rounds finished (agents answered and judged)
    round: int
    #: every agent answer so far: round, agent, role, deployment, text, answer, tokens, score, verified
    answers: list[dict[str, Any]]
    judge_usage: dict[str, Any]
    stopped: str
    result: StrategyResult
