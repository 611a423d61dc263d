"""The I/O of the tree search: sample next steps for many frontier nodes at once, embed steps.

Each child is one stop-and-continue stream (:class:`junto.pool.continuation.Continuation`) of the
conversation with the node's partial solution already written as the assistant turn: the server
renders nothing new for the shared prefix, and its prompt cache (llama.cpp's per-slot cache, vLLM's
automatic prefix caching) reuses the KV of the prefix the children share. The step ends at the step
delimiter (a blank line), at ``step_tokens``, or at the model's end of turn. All children of a depth
are sent concurrently; the pool client's per-deployment limit (``max_concurrency``: llama-server's
slots) bounds how many decode together. Every segment records the tokens the server took from its
cache (``cached_tokens``: llama-server's ``timings.cache_n``, OpenAI's
``prompt_tokens_details.cached_tokens``) — the real prefix-cache hits beside the tree's own count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from junto.errors import BackendError
from junto.pool.continuation import Continuation
from junto.reasoning.common import acquire, time_left
from junto.reasoning.context import RunContext
from junto.reasoning.ets.state import STEP_DELIMITER, ETSParams


@dataclass
class StepOut:
    """One sampled step (or why there is none)."""

    parent: int
    text: str = ""
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int | None = None
    finish_reason: str | None = None
    latency_s: float = 0.0
    error: str | None = None
    error_kind: str | None = None


def prefill_for(steps: Sequence[str]) -> str:
    """The assistant text a node's children continue: its steps, each closed by the delimiter."""
    return "".join(s + STEP_DELIMITER for s in steps)


async def _one(ctx: RunContext, deployment: str, messages: list[dict[str, Any]], parent: int, prefill: str,
               p: ETSParams, seed: int | None, started: float) -> StepOut:
    permit = await acquire(ctx, deployment, started)
    if permit is None:
        return StepOut(parent, error=f"{deployment}: not called (circuit open or deadline passed)",
                       error_kind="unavailable")
    params: dict[str, Any] = {**(ctx.passthrough or {})}
    for k, v in (("temperature", p.temperature), ("top_p", p.top_p), ("seed", seed)):
        if v is not None:
            params[k] = v
    cap = p.step_tokens if ctx.max_tokens is None else max(1, min(p.step_tokens, ctx.max_tokens))
    stops = [STEP_DELIMITER] + ([p.stop] if isinstance(p.stop, str) else list(p.stop or []))
    t0 = time.perf_counter()
    try:
        cont = Continuation(ctx.client, deployment, messages, prefill=prefill, **params)
        text = ""
        async for delta in cont.stream(max_tokens=cap, stop=stops):
            text += delta.text
        seg = cont.segments[-1]
    except BackendError as exc:
        permit.report(exc)
        return StepOut(parent, error=exc.message, error_kind="backend_error", latency_s=time.perf_counter() - t0)
    except BaseException:
        permit.release()
        raise
    permit.success()
    return StepOut(parent, text=seg.text, completion_tokens=seg.completion_tokens, prompt_tokens=seg.prompt_tokens,
                   cached_tokens=seg.cached_tokens, finish_reason=seg.finish_reason,
                   latency_s=time.perf_counter() - t0)


async def sample_steps(ctx: RunContext, deployment: str, messages: list[dict[str, Any]],
                       jobs: Sequence[tuple[int, str, int]], p: ETSParams, started: float, seed_base: int
                       ) -> tuple[list[StepOut], bool]:
    """Sample ``count`` next steps from each ``(parent id, prefill, count)``, all concurrently.

    Returns the steps in job order (failed ones carry ``error``) and whether the run's deadline cut
    the batch (the samples still running then are dropped).
    """
    tasks: list[asyncio.Task[StepOut]] = []
    k = 0
    for parent, prefill, count in jobs:
        for _ in range(count):
            seed = None if p.seed is None else p.seed + seed_base + k
            tasks.append(asyncio.ensure_future(_one(ctx, deployment, messages, parent, prefill, p, seed, started)))
            k += 1
    if not tasks:
        return [], False
    left = time_left(ctx, started)
    done, pending = await asyncio.wait(tasks, timeout=None if left is None else max(left, 0.0))
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    out = [t.result() for t in tasks if t in done]
    return out, bool(pending)


async def embed_steps(spec: str, texts: list[str]) -> np.ndarray:
    """Embeddings of the step texts (``junto.routers.embeddings``; a torch embedder runs in a thread)."""
    from junto.routers.embeddings import get_embedder, spec_is_blocking

    if spec_is_blocking(spec):
        emb = await asyncio.to_thread(get_embedder, spec)
        return await asyncio.to_thread(emb.encode, texts)
    return get_embedder(spec).encode(texts)


__all__ = ["StepOut", "prefill_for", "sample_steps", "embed_steps"]
