"""Pieces every strategy shares: the result type, sampling parameters, one sampling call, events.

The sampling call (:func:`draw`) is the only place a strategy talks to the pool: it emits the
``model_call`` and ``sample`` progress events, extracts each sample's answer key, and turns a
deadline that expires mid-call into a clean stop instead of an error when samples already exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from junto.errors import BackendError
from junto.pool.types import Usage
from junto.reasoning.answers import AnswerKind, answer_keys, canonical, extract
from junto.reasoning.context import RunContext


@dataclass
class StrategyResult:
    """What a strategy run returns; the fronts render it.

    ``answer``: the voted (extracted) answer; for ``direct`` the whole text. ``text``: the full
    text of the sample that carries the answer. ``votes``: answer → weight (``None`` for direct).
    ``samples``: samples drawn; ``samples_saved``: samples the budget allowed but early stopping skipped.
    """

    answer: str
    text: str
    deployments: list[str]
    votes: dict[str, float] | None
    samples: int
    samples_saved: int
    usage: Usage
    cost_usd: float
    latency_s: float
    strategy: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "text": self.text, "deployments": self.deployments, "votes": self.votes,
                "samples": self.samples, "samples_saved": self.samples_saved,
                "usage": {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens,
                          "total_tokens": self.usage.total_tokens, "estimated": self.usage.estimated},
                "cost_usd": self.cost_usd, "latency_s": round(self.latency_s, 4), "strategy": self.strategy,
                "extra": self.extra}


class Sample(TypedDict):
    """One sampled completion and the answer read from it."""

    index: int            # order in which the strategy asked for it (the tie rule uses it)
    deployment: str
    text: str
    answer: str | None    # the extracted answer as written
    key: str | None       # its vote key (None: no valid answer)
    mean_logprob: float | None
    finish_reason: str | None


class CallRecord(TypedDict):
    deployment: str
    n: int
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    cost_usd: float
    latency_s: float
    path: str
    error: str | None


class StrategyParams(BaseModel):
    """Sampling parameters every strategy accepts (unknown names are rejected)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, description="tokens per sample (RunContext.max_tokens caps it)")
    seed: int | None = None
    stop: list[str] | str | None = None


class VotingParams(StrategyParams):
    """Parameters of the voting strategies."""

    answer: AnswerKind = Field("auto", description="how to read an answer: auto, math, number, choice, text")
    weight: Literal["none", "logprob"] = Field(
        "none", description="'logprob': weigh each vote by its mean token probability (when the backend returns logprobs)")
    token_budget: int | None = Field(None, ge=1, description="stop drawing once this many completion tokens are spent")


def sampling_kwargs(p: StrategyParams, ctx: RunContext) -> dict[str, Any]:
    max_tokens = p.max_tokens
    if ctx.max_tokens is not None:
        max_tokens = min(max_tokens, ctx.max_tokens) if max_tokens is not None else ctx.max_tokens
    kw: dict[str, Any] = {"temperature": p.temperature, "top_p": p.top_p, "max_tokens": max_tokens, "stop": p.stop}
    return {k: v for k, v in kw.items() if v is not None}


def time_left(ctx: RunContext, started: float) -> float | None:
    if ctx.deadline_s is None:
        return None
    return ctx.deadline_s - (time.monotonic() - started)


def answer_keys_for(samples: list[Sample], kind: AnswerKind) -> list[str | None]:
    """Vote keys for all samples so far, symbolic math answers merged across samples (order kept)."""
    from junto.reasoning.answers import group_keys

    return group_keys([s["key"] for s in samples], kind)


async def draw(ctx: RunContext, writer, deployment: str, messages: list[dict[str, Any]], indices: list[int],
               p: VotingParams, started: float, strategy: str) -> tuple[list[Sample], CallRecord]:
    """One request for ``len(indices)`` samples from ``deployment``; events go to ``writer``."""
    n = len(indices)
    kw = sampling_kwargs(p, ctx)
    if p.seed is not None:
        kw["seed"] = p.seed + indices[0]  # the client adds the choice number: sample i gets seed + i
    logprobs = p.weight == "logprob"
    if logprobs:
        # llama.cpp's server returns logprobs only when top_logprobs is set too
        kw["extra"] = {"top_logprobs": 1}
    left = time_left(ctx, started)
    writer({"type": "model_call", "strategy": strategy, "deployment": deployment, "n": n, "first_index": indices[0]})
    try:
        r = await ctx.client.chat(deployment, messages, n=n, logprobs=logprobs,
                                  timeout=max(left, 0.05) if left is not None else None, **kw)
    except BackendError as exc:
        left = time_left(ctx, started)
        if left is not None and left <= 0.05:
            # the deadline cut this call short: record it, the strategy decides on what it has
            return [], CallRecord(deployment=deployment, n=n, prompt_tokens=0, completion_tokens=0, estimated=True,
                                  cost_usd=0.0, latency_s=0.0, path="deadline", error=exc.message)
        raise
    samples: list[Sample] = []
    keys = answer_keys([c.text for c in r.choices], p.answer)
    for idx, choice, key in zip(indices, r.choices, keys):
        s = Sample(index=idx, deployment=deployment, text=choice.text, answer=extract(choice.text, p.answer),
                   key=key, mean_logprob=choice.mean_logprob, finish_reason=choice.finish_reason)
        samples.append(s)
        writer({"type": "sample", "strategy": strategy, "index": idx, "deployment": deployment, "answer": key,
                "raw_answer": s["answer"], "valid": key is not None, "mean_logprob": s["mean_logprob"],
                "text": choice.text})
    rec = CallRecord(deployment=deployment, n=n, prompt_tokens=r.usage.prompt_tokens,
                     completion_tokens=r.usage.completion_tokens, estimated=r.usage.estimated, cost_usd=r.cost_usd,
                     latency_s=r.latency_s, path=r.path, error=None)
    return samples, rec


def spent(calls: list[CallRecord]) -> tuple[Usage, float]:
    usage, cost = Usage(), 0.0
    for c in calls:
        usage = usage + Usage(c["prompt_tokens"], c["completion_tokens"], c["estimated"])
        cost += c["cost_usd"]
    return usage, cost


def carrier(samples: list[Sample], keys: list[str | None], winner: str | None) -> Sample | None:
    """The first sample (by index) whose answer is the winner: its text carries the answer."""
    best = None
    for s, k in zip(samples, keys):
        if k == winner and (best is None or s["index"] < best["index"]):
            best = s
    return best


def display_answer(key: str | None, kind: AnswerKind) -> str:
    return key if key is not None else ""


__all__ = ["StrategyResult", "Sample", "CallRecord", "StrategyParams", "VotingParams", "draw", "spent", "carrier",
           "canonical", "time_left", "sampling_kwargs", "answer_keys_for", "display_answer"]
