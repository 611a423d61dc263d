"""The ``direct`` graph: stream one answer, falling back to the next candidate before the first token."""

from __future__ import annotations

import time
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from junto.errors import BackendError
from junto.pool.types import StreamDelta, StreamEnd
from junto.reasoning.common import CallRecord, StrategyResult, sampling_kwargs, spent, time_left
from junto.reasoning.context import RunContext
from junto.reasoning.direct.state import DirectParams, DirectState


async def generate(state: DirectState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    p: DirectParams = state["params"]
    writer = get_stream_writer()
    kw = sampling_kwargs(p, ctx)
    if p.seed is not None:
        kw["seed"] = p.seed
    fallbacks: list[dict[str, str]] = []
    last: BackendError | None = None
    for name in ctx.candidates:
        parts: list[str] = []
        ttft = None
        writer({"type": "model_call", "strategy": "direct", "deployment": name, "n": 1, "first_index": 0})
        left = time_left(ctx, state["started"])
        try:
            async for ev in ctx.client.stream(name, state["messages"], timeout=left, **kw):
                if isinstance(ev, StreamDelta):
                    if ttft is None:
                        ttft = time.monotonic() - state["started"]
                    parts.append(ev.text)
                    writer({"type": "token", "text": ev.text, "deployment": name})
                elif isinstance(ev, StreamEnd):
                    call = CallRecord(deployment=name, n=1, prompt_tokens=ev.usage.prompt_tokens,
                                      completion_tokens=ev.usage.completion_tokens, estimated=ev.usage.estimated,
                                      cost_usd=ev.cost_usd, latency_s=ev.latency_s, path=ev.path, error=None)
                    return {"text": "".join(parts), "deployment": name, "finish_reason": ev.finish_reason,
                            "ttft_s": ttft, "fallbacks": fallbacks, "calls": [call]}
        except BackendError as exc:
            # switching after the first token would splice two answers together
            if parts or not exc.retryable:
                raise
            fallbacks.append({"deployment": name, "error": exc.message})
            writer({"type": "fallback", "strategy": "direct", "deployment": name, "error": exc.message})
            last = exc
    assert last is not None
    raise last


async def finish(state: DirectState) -> dict[str, Any]:
    usage, cost = spent(state["calls"])
    text = state["text"]
    get_stream_writer()({"type": "decision", "strategy": "direct", "answer": text, "reason": "single answer",
                         "deployment": state["deployment"]})
    result = StrategyResult(answer=text, text=text, deployments=[state["deployment"]], votes=None, samples=1,
                            samples_saved=0, usage=usage, cost_usd=cost,
                            latency_s=time.monotonic() - state["started"], strategy="direct",
                            extra={"finish_reason": state.get("finish_reason"), "ttft_s": state.get("ttft_s"),
                                   "fallbacks": state.get("fallbacks", [])})
    return {"result": result}


builder = StateGraph(DirectState, context_schema=RunContext)
builder.add_node("generate", generate)
builder.add_node("finish", finish)
builder.add_edge(START, "generate")
builder.add_edge("generate", "finish")
builder.add_edge("finish", END)

graph = builder.compile(name="direct")
