"""The ``direct`` graph: one node around :func:`~junto.reasoning.direct.run.answer_direct` (the one
``direct`` implementation, shared with the facade's hot path), then the result."""

from __future__ import annotations

import time
from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from junto.reasoning.common import CallRecord, StrategyResult, sampling_kwargs, spent, time_left
from junto.reasoning.context import RunContext
from junto.reasoning.direct.run import DirectAnswer, DirectCall, DirectFallback, DirectToken, answer_direct
from junto.reasoning.direct.state import DirectParams, DirectState


async def generate(state: DirectState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = runtime.context
    p: DirectParams = state["params"]
    writer = get_stream_writer()
    kw = sampling_kwargs(p, ctx)
    if p.seed is not None:
        kw["seed"] = p.seed
    started = time.perf_counter()
    async for ev in answer_direct(ctx.client, ctx.candidates, state["messages"], kw, health=ctx.health,
                                  stream=True, deadline_s=time_left(ctx, state["started"]), started=started):
        if isinstance(ev, DirectToken):
            writer({"type": "token", "text": ev.text, "deployment": ev.deployment, "kind": ev.kind})
        elif isinstance(ev, DirectCall):
            writer({"type": "model_call", "strategy": "direct", "deployment": ev.deployment, "n": 1,
                    "first_index": 0})
        elif isinstance(ev, DirectFallback):
            writer({"type": "fallback", "strategy": "direct", "deployment": ev.deployment, "error": ev.error})
        elif isinstance(ev, DirectAnswer):
            call = CallRecord(deployment=ev.deployment, n=1, first_index=0, prompt_tokens=ev.usage.prompt_tokens,
                              completion_tokens=ev.usage.completion_tokens, estimated=ev.usage.estimated,
                              cost_usd=ev.cost_usd, latency_s=ev.latency_s, path=ev.path, error=None,
                              error_kind=None, retryable=False, status_code=None,
                              reasoning_tokens=ev.usage.reasoning_tokens,
                              reasoning_estimated=ev.usage.reasoning_estimated)
            return {"text": ev.text, "reasoning": ev.reasoning, "thinking_truncated": ev.thinking_truncated,
                    "deployment": ev.deployment, "finish_reason": ev.finish_reason,
                    "ttft_s": ev.ttft_s, "fallbacks": ev.fallbacks, "calls": [call]}
    raise AssertionError("answer_direct ended without an answer")


async def finish(state: DirectState) -> dict[str, Any]:
    usage, cost = spent(state["calls"])
    text = state["text"]
    get_stream_writer()({"type": "decision", "strategy": "direct", "answer": text, "reason": "single answer",
                         "deployment": state["deployment"]})
    result = StrategyResult(answer=text, text=text, deployments=[state["deployment"]], votes=None, samples=1,
                            samples_saved=0, usage=usage, cost_usd=cost,
                            latency_s=time.monotonic() - state["started"], strategy="direct",
                            extra={"finish_reason": state.get("finish_reason"), "ttft_s": state.get("ttft_s"),
                                   "fallbacks": state.get("fallbacks", []),
                                   **({"thinking_truncated": True} if state.get("thinking_truncated") else {})},
                            reasoning_content=state.get("reasoning"))
    return {"result": result}


builder = StateGraph(DirectState, context_schema=RunContext)
builder.add_node("generate", generate)
builder.add_node("finish", finish)
builder.add_edge(START, "generate")
builder.add_edge("generate", "finish")
builder.add_edge("finish", END)

graph = builder.compile(name="direct")
