"""Pieces every strategy shares: the result type, sampling parameters, one sampling call, events.

The sampling call (:func:`draw`) is the only place a voting strategy talks to the pool. It

* claims a health permit right before the request (``RunContext.health``; a half-open deployment's
  single probe only when it is really called) and reports the outcome from every path;
* emits the ``model_call``, ``sample`` and ``error`` progress events and reads each sample's answer
  key — a sample cut by ``max_tokens`` (``finish_reason == "length"``) gets no vote unless the
  strategy's ``allow_truncated`` says so;
* never raises for a failed request: it returns no samples and a :class:`CallRecord` whose
  ``error_kind`` says why — ``deadline`` (the run's deadline cut it), ``backend_error`` (the
  deployment failed or refused), ``unavailable`` (its circuit breaker is open: not called). The
  strategy decides what to do with the samples it has.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from junto.answers import AnswerKind, answer_keys, canonical, extract
from junto.errors import BackendError
from junto.health import Permit
from junto.pool.types import Usage
from junto.reasoning.context import RunContext
from junto.thinking import reasoning_tokens, split_for


@dataclass
class StrategyResult:
    """What a strategy run returns; the fronts render it.

    ``answer``: the voted (extracted) answer; for ``direct`` the whole text. ``text``: the full
    text of the sample that carries the answer (its thinking split off). ``votes``: answer → weight (``None`` for direct).
    ``samples``: samples obtained; ``samples_saved``: samples the budget allowed but early stopping skipped.
    ``reasoning_content``: the thinking of the sample that carries the answer (:mod:`junto.thinking`;
    ``text`` excludes it), ``None`` when it did not think.
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
    reasoning_content: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "text": self.text, "deployments": self.deployments, "votes": self.votes,
                "samples": self.samples, "samples_saved": self.samples_saved,
                "reasoning_content": self.reasoning_content,
                "usage": {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens,
                          "total_tokens": self.usage.total_tokens, "estimated": self.usage.estimated,
                          "reasoning_tokens": self.usage.reasoning_tokens,
                          "reasoning_estimated": self.usage.reasoning_estimated},
                "cost_usd": self.cost_usd, "latency_s": round(self.latency_s, 4), "strategy": self.strategy,
                "extra": self.extra}


class Sample(TypedDict):
    """One sampled completion and the answer read from it."""

    index: int            # order in which the strategy asked for it (the tie rule uses it)
    deployment: str
    text: str             # the answer part: the model's thinking (junto.thinking) is split off into ``reasoning``
    reasoning: NotRequired[str | None]
    answer: str | None    # the extracted answer as written
    key: str | None       # its vote key (None: no valid answer, or cut by max_tokens and not allowed to vote)
    mean_logprob: float | None
    finish_reason: str | None
    truncated: bool       # finish_reason == "length": cut by max_tokens


ErrorKind = Literal["deadline", "backend_error", "unavailable"]


class CallRecord(TypedDict):
    deployment: str
    n: int
    first_index: int
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    cost_usd: float
    latency_s: float
    path: str
    error: str | None
    #: why the call gave no samples (None: it succeeded)
    error_kind: ErrorKind | None
    #: a fallback to another deployment may help (connection errors, timeouts, 5xx, circuit open)
    retryable: bool
    status_code: int | None
    #: completion tokens spent thinking (None: no sample thought) and whether that count is estimated
    reasoning_tokens: NotRequired[int | None]
    reasoning_estimated: NotRequired[bool]


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
    allow_truncated: bool = Field(
        False, description="let a sample cut by max_tokens (finish_reason 'length') vote; by default it is invalid")


def sampling_kwargs(p: StrategyParams, ctx: RunContext) -> dict[str, Any]:
    max_tokens = p.max_tokens
    if ctx.max_tokens is not None:
        max_tokens = min(max_tokens, ctx.max_tokens) if max_tokens is not None else ctx.max_tokens
    kw: dict[str, Any] = {**(ctx.passthrough or {})}
    kw.update({"temperature": p.temperature, "top_p": p.top_p, "max_tokens": max_tokens, "stop": p.stop})
    return {k: v for k, v in kw.items() if v is not None}


def time_left(ctx: RunContext, started: float) -> float | None:
    if ctx.deadline_s is None:
        return None
    return ctx.deadline_s - (time.monotonic() - started)


def answer_keys_for(samples: list[Sample], kind: AnswerKind) -> list[str | None]:
    """Vote keys for all samples so far, symbolic math answers merged across samples (order kept)."""
    from junto.answers import group_keys

    return group_keys([s["key"] for s in samples], kind)


def is_truncated(finish_reason: str | None) -> bool:
    """Was the completion cut by ``max_tokens``? (OpenAI's ``finish_reason == "length"``.)"""
    return finish_reason == "length"


class _Untracked:
    """The permit of a run without a health tracker: every report is a no-op."""

    probe = False
    outcome = None

    def success(self) -> None: ...

    def failure(self) -> None: ...

    def release(self) -> None: ...

    def report(self, exc: BaseException | None) -> None: ...


async def acquire(ctx: RunContext, deployment: str, started: float) -> Permit | _Untracked | None:
    """A health permit for one call to ``deployment`` (``None``: it may not be called now).

    Without a health tracker there is nothing to claim: an untracked permit. While another request's
    probe of a half-open deployment is in flight this waits for its verdict (bounded by the run's
    deadline and the deployment's timeout) instead of failing the sample; when every candidate of
    the run is cooling, the deployment is tried anyway (never as the probe).
    """
    health = ctx.health
    if health is None:
        return _Untracked()
    wait_until = time.monotonic() + ctx.pool.deployment(deployment).timeout_s
    while True:
        permit = health.try_acquire(deployment)
        if permit is not None:
            return permit
        if health.state(deployment) == "probing":
            left = time_left(ctx, started)
            if (left is not None and left <= 0) or time.monotonic() >= wait_until:
                return None
            await asyncio.sleep(0.02 if left is None else min(0.02, left))
            continue
        if all(health.state(c) == "cooling" for c in ctx.candidates):
            return health.try_acquire(deployment, force=True)
        return None


def failed_call(deployment: str, indices: list[int], message: str, kind: ErrorKind, *, retryable: bool,
                status_code: int | None = None, latency_s: float = 0.0) -> CallRecord:
    return CallRecord(deployment=deployment, n=len(indices), first_index=indices[0], prompt_tokens=0,
                      completion_tokens=0, estimated=True, cost_usd=0.0, latency_s=latency_s, path=kind,
                      error=message, error_kind=kind, retryable=retryable, status_code=status_code)


async def draw(ctx: RunContext, writer, deployment: str, messages: list[dict[str, Any]], indices: list[int],
               p: VotingParams, started: float, strategy: str) -> tuple[list[Sample], CallRecord]:
    """One request for ``len(indices)`` samples from ``deployment``; events go to ``writer``.

    Never raises a :class:`BackendError`: a failed request returns ``([], record)`` with the
    record's ``error`` and ``error_kind`` set (and an ``error`` event written).
    """
    n = len(indices)
    kw = sampling_kwargs(p, ctx)
    if p.seed is not None:
        kw["seed"] = p.seed + indices[0]  # the client adds the choice number: sample i gets seed + i
    logprobs = p.weight == "logprob"
    if logprobs:
        # llama.cpp's server returns logprobs only when top_logprobs is set too
        kw["extra"] = {"top_logprobs": 1}

    def error(rec: CallRecord) -> tuple[list[Sample], CallRecord]:
        writer({"type": "error", "strategy": strategy, "deployment": deployment, "n": n, "first_index": indices[0],
                "kind": rec["error_kind"], "error": rec["error"]})
        return [], rec

    permit = await acquire(ctx, deployment, started)
    if permit is None:
        left = time_left(ctx, started)
        if left is not None and left <= 0:
            return error(failed_call(deployment, indices, f"{deployment}: the deadline passed before the call",
                                     "deadline", retryable=False))
        state = ctx.health.state(deployment) if ctx.health is not None else "unknown"
        return error(failed_call(deployment, indices, f"{deployment}: not called: its circuit breaker is {state}",
                                 "unavailable", retryable=True))
    left = time_left(ctx, started)
    writer({"type": "model_call", "strategy": strategy, "deployment": deployment, "n": n, "first_index": indices[0]})
    t0 = time.perf_counter()
    try:
        r = await ctx.client.chat(deployment, messages, n=n, logprobs=logprobs,
                                  timeout=max(left, 0.05) if left is not None else None, **kw)
    except BackendError as exc:
        left = time_left(ctx, started)
        if left is not None and left <= 0.05:
            # the run's deadline cut this call short: no verdict on the deployment
            permit.release()
            return error(failed_call(deployment, indices, exc.message, "deadline", retryable=False,
                                     latency_s=time.perf_counter() - t0))
        permit.report(exc)  # a failure, unless the deployment refused the request as the client's fault
        return error(failed_call(deployment, indices, exc.message, "backend_error", retryable=exc.retryable,
                                 status_code=exc.status_code, latency_s=time.perf_counter() - t0))
    except BaseException:  # cancelled (the run was abandoned) or a bug: no verdict, free the probe
        permit.release()
        raise
    permit.success()
    samples: list[Sample] = []
    # votes read the answer, never the thinking: a number in the reasoning is not the model's answer
    dep = ctx.pool.deployment(deployment)
    splits = [split_for(dep, c.text) for c in r.choices]
    keys = answer_keys([s.content for s in splits], p.answer)
    for idx, choice, key, sp in zip(indices, r.choices, keys, splits):
        cut = is_truncated(choice.finish_reason)
        if cut and not p.allow_truncated:
            key = None
        s = Sample(index=idx, deployment=deployment, text=sp.content, reasoning=sp.reasoning,
                   answer=extract(sp.content, p.answer), key=key, mean_logprob=choice.mean_logprob,
                   finish_reason=choice.finish_reason, truncated=cut)
        samples.append(s)
        writer({"type": "sample", "strategy": strategy, "index": idx, "deployment": deployment, "answer": key,
                "raw_answer": s["answer"], "valid": key is not None, "truncated": cut,
                "finish_reason": choice.finish_reason, "mean_logprob": s["mean_logprob"], "text": sp.content,
                "reasoning": sp.reasoning})
    r_tokens, r_estimated = await reasoning_tokens(ctx.client, deployment, splits, [c.text for c in r.choices],
                                                   r.usage.completion_tokens)
    rec = CallRecord(deployment=deployment, n=n, first_index=indices[0], prompt_tokens=r.usage.prompt_tokens,
                     completion_tokens=r.usage.completion_tokens, estimated=r.usage.estimated, cost_usd=r.cost_usd,
                     latency_s=r.latency_s, path=r.path, error=None, error_kind=None, retryable=False,
                     status_code=None, reasoning_tokens=r_tokens, reasoning_estimated=r_estimated)
    return samples, rec


def spent(calls: list[CallRecord]) -> tuple[Usage, float]:
    usage, cost = Usage(), 0.0
    for c in calls:
        usage = usage + Usage(c["prompt_tokens"], c["completion_tokens"], c["estimated"],
                              c.get("reasoning_tokens"), c.get("reasoning_estimated", False))
        cost += c["cost_usd"]
    return usage, cost


def call_errors(calls: list[CallRecord]) -> list[dict[str, Any]]:
    """The failed calls, for a result's ``extra["errors"]``."""
    return [{"deployment": c["deployment"], "first_index": c["first_index"], "n": c["n"], "kind": c["error_kind"],
             "error": c["error"], "status_code": c["status_code"]} for c in calls if c["error"]]


def failure_reason(calls: list[CallRecord]) -> str | None:
    """The truthful stop reason for failed calls: ``deadline``, ``backend_error``, ``unavailable`` or None."""
    kinds = {c["error_kind"] for c in calls if c["error"]}
    if not kinds:
        return None
    if "deadline" in kinds:
        return "deadline"
    if "backend_error" in kinds:
        return "backend_error"
    return "unavailable"


def no_sample_error(strategy: str, calls: list[CallRecord]) -> BackendError:
    """The error a voting strategy raises when it obtained no sample at all, naming what went wrong."""
    failed = [c for c in calls if c["error"]]
    if not failed or failure_reason(failed) == "deadline":
        return BackendError(f"{strategy} drew no sample before the deadline",
                            hint="raise deadline_s, or lower max_tokens so one sample fits in it", retryable=True)
    deps = list(dict.fromkeys(c["deployment"] for c in failed))
    last = failed[-1]
    refused = [c for c in failed if c["status_code"] is not None and 400 <= c["status_code"] < 500
               and c["status_code"] not in (408, 429)]
    status = refused[-1]["status_code"] if refused and len(refused) == len(failed) else last["status_code"]
    return BackendError(f"{strategy} obtained no sample: every call failed ({', '.join(deps)}); last: {last['error']}",
                        deployment=last["deployment"], retryable=any(c["retryable"] for c in failed),
                        status_code=status)


def truncated_count(samples: list[Sample]) -> int:
    return sum(1 for s in samples if s.get("truncated"))


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
           "canonical", "time_left", "sampling_kwargs", "answer_keys_for", "display_answer", "acquire",
           "call_errors", "failure_reason", "no_sample_error", "truncated_count", "is_truncated", "failed_call"]
