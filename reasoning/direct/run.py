"""The one ``direct`` implementation: one answer from the best-ranked deployment that gives one.

:func:`answer_direct` is an async generator used both by the facade's hot path (no graph) and by
the ``direct`` strategy graph. It tries the candidates in rank order:

* with a :class:`~junto.health.HealthTracker` it skips the deployments that may not be called now
  (pure look), claims a permit right before each call (the single probe of a half-open deployment
  only when that deployment is really called) and reports every outcome — success, failure, or a
  release when the call was cancelled or refused as the client's fault; when every candidate is
  cooling the best-ranked one is tried anyway (an error says more than silence);
* ``stream=True`` streams tokens and falls back to the next candidate on a retryable error
  (connection, timeout, 5xx) **only before the first token**: afterwards a switch would splice two
  answers, so the error is raised. ``stream=False`` makes one non-streamed call per candidate (exact
  usage from servers that report none in streams, e.g. llama.cpp; logprobs when asked for);
* ``deadline_s`` bounds the whole answer: each call gets the time left as its timeout.
* a thinking model's reasoning is split from its answer (:mod:`junto.thinking`, the deployment's tags):
  streamed pieces are :class:`DirectToken`\\ s of kind "reasoning" or "content"; :class:`DirectAnswer`'s
  ``text`` is the answer, ``reasoning`` the thinking and its usage counts ``reasoning_tokens``.

Events, in order: for each call a :class:`DirectCall`; while streaming, :class:`DirectToken`\\ s;
for each candidate given up before its first token a :class:`DirectFallback`; last, one
:class:`DirectAnswer`. When no candidate answers, the last :class:`~junto.errors.BackendError` is
raised (wrapped as "every deployment failed" when several were tried).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from junto.errors import BackendError
from junto.health import HealthTracker, Permit
from junto.pool.client import PoolClient
from junto.pool.types import StreamDelta, StreamEnd, Usage


@dataclass
class DirectCall:
    """A request is being sent to ``deployment``."""

    deployment: str


@dataclass
class DirectToken:
    """A piece of the streamed answer: ``kind`` "reasoning" (the model's thinking, :mod:`junto.thinking`)
    or "content" (the answer)."""

    text: str
    deployment: str
    kind: str = "content"


@dataclass
class DirectFallback:
    """``deployment`` failed before its first token (or was skipped: its breaker is open); the next is tried."""

    deployment: str
    error: str
    skipped: bool = False


@dataclass
class DirectAnswer:
    """The answer: always the last event."""

    text: str
    deployment: str
    finish_reason: str | None
    #: seconds from ``started`` to the first token (streamed; ``None`` for a non-streamed answer)
    ttft_s: float | None
    usage: Usage
    cost_usd: float
    #: seconds from ``started`` to the end of the answer
    latency_s: float
    #: the candidates given up before this one: ``{"deployment", "error"}`` each
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    #: how the call was served ("single", "litellm", ...)
    path: str = "single"
    #: the server's logprobs object (OpenAI shape), non-streamed calls with ``logprobs`` only
    logprobs: dict[str, Any] | None = None
    #: the thinking (``junto.thinking``; ``text`` is the answer without it), ``None`` when there was none
    reasoning: str | None = None
    #: the thinking was cut before its close tag (the answer is then empty)
    thinking_truncated: bool = False


async def _with_reasoning(client: PoolClient, name: str, raw: str, usage: Usage) -> tuple[Any, Usage]:
    """The split of a completion and its usage with ``reasoning_tokens`` (exact where the deployment tokenizes)."""
    from dataclasses import replace

    from junto.thinking import reasoning_tokens, split_for

    parts = split_for(client.pool.deployment(name), raw)
    if parts.reasoning is None:
        return parts, usage
    n, estimated = await reasoning_tokens(client, name, parts, raw, usage.completion_tokens)
    return parts, replace(usage, reasoning_tokens=n, reasoning_estimated=estimated)


DirectEvent = DirectCall | DirectToken | DirectFallback | DirectAnswer


def _plan(candidates: Sequence[str], health: HealthTracker | None) -> tuple[list[str], bool]:
    """The candidates to try, and whether they are tried although every one is unavailable (``force``).

    Empty while none may be called but another request's probe is in flight (wait for its verdict).
    """
    names = list(dict.fromkeys(candidates))
    if health is None:
        return names, False
    ok = [n for n in names if health.available(n)]
    if ok:
        return ok, False
    if all(health.state(n) == "cooling" for n in names):
        return names[:1], True
    return [], False


async def _candidates(client: PoolClient, candidates: Sequence[str], health: HealthTracker | None,
                      wait_s: float | None) -> tuple[list[str], bool]:
    """:func:`_plan`, waiting (at most ``wait_s``, default the best candidate's timeout) while a probe is in flight."""
    names, force = _plan(candidates, health)
    if names or health is None:
        return names, force
    limit = client.pool.deployment(candidates[0]).timeout_s if wait_s is None else wait_s
    until = time.perf_counter() + limit
    while not names and time.perf_counter() < until:
        await asyncio.sleep(0.02)
        names, force = _plan(candidates, health)
    return names, force


async def answer_direct(client: PoolClient, candidates: Sequence[str], messages: Sequence[Mapping[str, Any]],
                        params: Mapping[str, Any] | None = None, *, health: HealthTracker | None = None,
                        stream: bool = True, deadline_s: float | None = None,
                        started: float | None = None) -> AsyncIterator[DirectEvent]:
    """One answer from the first of ``candidates`` (ranked best first) that gives one; see the module doc.

    ``params``: the pool client's keyword arguments (``temperature``, ``top_p``, ``max_tokens``,
    ``stop``, ``seed``, ``presence_penalty``, ``frequency_penalty``, ``top_logprobs``, ``extra``) and
    ``logprobs`` (non-streamed calls only). ``started``: a ``time.perf_counter()`` value that
    ``ttft_s``, ``latency_s`` and ``deadline_s`` count from (default: now).
    """
    if not candidates:
        raise BackendError("no candidate deployment to answer with", retryable=False)
    t0 = time.perf_counter() if started is None else started
    kw = dict(params or {})
    logprobs = bool(kw.pop("logprobs", False))

    def left() -> float | None:
        return None if deadline_s is None else deadline_s - (time.perf_counter() - t0)

    names, force = await _candidates(client, candidates, health, left())
    fallbacks: list[dict[str, str]] = []
    tried: list[str] = []
    last: BackendError | None = None
    if not names:
        last = BackendError(f"no deployment may be called now: each is being probed after failures "
                            f"({', '.join(candidates)})", hint="retry in a moment", deployment=candidates[0],
                            retryable=True)

    for name in names:
        permit: Permit | None = None
        if health is not None:
            permit = health.try_acquire(name, force=force)
            if permit is None:  # another request took its probe meanwhile
                msg = f"{name}: not called: its circuit breaker is {health.state(name)}"
                fallbacks.append({"deployment": name, "error": msg})
                last = BackendError(msg, deployment=name, retryable=True)
                yield DirectFallback(name, msg, skipped=True)
                continue
        remaining = left()
        if remaining is not None and remaining <= 0:
            if permit is not None:
                permit.release()
            last = BackendError(f"no answer within the deadline of {deadline_s:g}s", deployment=name,
                                retryable=False)
            break
        tried.append(name)
        yield DirectCall(name)
        first_token: float | None = None
        parts: list[str] = []
        try:
            if not stream:
                r = await client.chat(name, messages, logprobs=logprobs, timeout=remaining, **kw)
                if permit is not None:
                    permit.success()
                choice = r.choices[0]
                split, usage = await _with_reasoning(client, name, r.text, r.usage)
                yield DirectAnswer(split.content, name, choice.finish_reason, None, usage,
                                   r.cost_usd, time.perf_counter() - t0, fallbacks, r.path,
                                   choice.logprobs if logprobs else None, split.reasoning, split.truncated)
                return
            from junto.thinking import stream_for

            thinking = stream_for(client.pool.deployment(name))
            async for ev in client.stream(name, messages, timeout=remaining, **kw):
                if isinstance(ev, StreamDelta):
                    if first_token is None:
                        first_token = time.perf_counter() - t0
                    parts.append(ev.text)
                    for kind, text in thinking.feed(ev.text):
                        yield DirectToken(text, name, kind)
                elif isinstance(ev, StreamEnd):
                    if permit is not None:
                        permit.success()
                    for kind, text in thinking.finish():
                        yield DirectToken(text, name, kind)
                    split, usage = await _with_reasoning(client, name, "".join(parts), ev.usage)
                    yield DirectAnswer(split.content, name, ev.finish_reason, first_token, usage, ev.cost_usd,
                                       time.perf_counter() - t0, fallbacks, ev.path, None, split.reasoning,
                                       split.truncated)
                    return
            raise BackendError(f"{name}: the stream ended without a final event", deployment=name,
                               retryable=not parts)
        except BackendError as exc:
            if permit is not None:
                permit.report(exc)  # a failure, unless the deployment refused the request as the client's fault
            # switching after the first token would splice two answers together
            if parts or not exc.retryable:
                raise
            fallbacks.append({"deployment": name, "error": exc.message})
            yield DirectFallback(name, exc.message)
            last = exc
        finally:
            # cancelled, or the consumer stopped listening (GeneratorExit): no verdict, free the probe
            if permit is not None and permit.outcome is None:
                permit.release()
    assert last is not None
    if len(tried) > 1:
        raise BackendError(f"every deployment failed ({', '.join(tried)}); last: {last.message}",
                           hint=last.hint, deployment=last.deployment, retryable=True, status_code=last.status_code)
    raise last
