"""Thinking on a :class:`~junto.pool.continuation.Continuation`, watched (TrimR) or not (plain thinking).

:func:`think` is the one path both take — and ThoughtMani's fallback when its planner gives up — so a
comparison of them measures the monitoring and nothing else:

1. the reasoner's assistant turn is prefilled with the open tag and its thinking streams until the
   close tag, the thinking budget, or a cut;
2. with monitoring on, each delta feeds the segmenter and the repetition detector; each finished
   thought goes onto a queue that a checker task works through in order — the answer module first,
   the shared verifier (:mod:`junto.reasoning.trimr.verifier`) for the thoughts it is unsure of — and
   the :class:`~junto.reasoning.trimr.logic.Monitor` decides. A decision cuts the stream from that
   task (``Continuation.cut``); decoding never waits for a check;
3. the thinking is closed — after a decision with TrimR's short closing text — and the answer
   streams as the next segment of the same turn (the server's prompt cache keeps the thinking).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from junto.answers import AnswerKind, answer_span, canonical, extract
from junto.errors import BackendError
from junto.pool.config import Thinking
from junto.pool.continuation import Continuation
from junto.pool.types import Usage
from junto.reasoning.trimr.logic import CLOSING, Monitor, RepetitionDetector, Segmenter, check_thought
from junto.reasoning.trimr.verifier import Verifier

#: the thinking prompt for a reasoner whose deployment declares none (an instruct model)
DEFAULT_THINKING_PROMPT = (
    "First think inside <think> and </think>: work the problem out step by step and double-check the "
    "result. After </think>, write the final answer on its own line, starting with \"Answer:\".")


@dataclass
class MonitorSettings:
    consecutive: int = 2
    under_fraction: float = 0.5
    max_thoughts: int = 20
    repeat_window: int = 24
    repeat_count: int = 3
    kind: AnswerKind = "auto"


@dataclass
class ThinkOutcome:
    thinking: str
    answer_text: str
    answer: str
    #: where the answer was read: "answer" (after the thinking), "thinking", "monitor", or None (no answer)
    answer_from: str | None
    #: "overthinking" | "underthinking" | "repetition" (TrimR cut), "closed" (the model closed its thinking),
    #: "budget" (the thinking budget ran out), "planned" (ThoughtMani: the thinking was the plan)
    ended: str
    thinking_tokens: int
    answer_tokens: int
    usage: Usage
    thoughts: list[dict[str, Any]] = field(default_factory=list)
    thought_count: int = 0
    verifier_calls: int = 0
    verifier_errors: list[str] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    latency_s: float = 0.0


def thinking_messages(messages: list[dict[str, Any]], thinking: Thinking | None) -> list[dict[str, Any]]:
    """The conversation with the deployment's thinking prompt as (or added to) its system message: its
    ``thinking.prompt``; none for a deployment declared thinking without one (a reasoning model thinks by
    itself); :data:`DEFAULT_THINKING_PROMPT` for a deployment not declared thinking at all."""
    prompt = thinking.prompt if thinking is not None else DEFAULT_THINKING_PROMPT
    msgs = [dict(m) for m in messages]
    if not prompt:
        return msgs
    if msgs and msgs[0].get("role") == "system":
        msgs[0]["content"] = f"{msgs[0].get('content') or ''}\n\n{prompt}".strip()
        return msgs
    return [{"role": "system", "content": prompt}, *msgs]


def question_of(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else " ".join(str(p.get("text", "")) for p in c or [] if isinstance(p, dict))
    return ""


def final_answer(answer_text: str, thinking: str, kind: AnswerKind, converged: str | None
                 ) -> tuple[str | None, str | None]:
    """The answer and where it was read: the text after the thinking; else the answer the thinking stated
    (a model that concluded inside its thinking and summarised after it); else the answer TrimR's
    monitor saw the thoughts converge on."""
    key = canonical(extract(answer_text, kind), kind)
    if key is not None:
        return key, "answer"
    if answer_span(thinking) is not None:
        key = canonical(extract(thinking, kind), kind)
        if key is not None:
            return key, "thinking"
    return (converged, "monitor") if converged is not None else (None, None)


def _segments(cont: Continuation) -> list[dict[str, Any]]:
    return [{"text_chars": len(s.text), "prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens,
             "cached_tokens": s.cached_tokens, "finish_reason": s.finish_reason} for s in cont.segments]


async def answer_after(cont: Continuation, emit: Callable[[dict[str, Any]], None], strategy: str, deployment: str,
                       answer_tokens: int) -> str:
    parts: list[str] = []
    async for d in cont.stream(max_tokens=answer_tokens):
        parts.append(d.text)
        emit({"type": "token", "text": d.text, "deployment": deployment})
    return "".join(parts)


async def think(client, reasoner: str, messages: list[dict[str, Any]], *, thinking: Thinking | None, budget: int,
                answer_tokens: int, emit: Callable[[dict[str, Any]], None], strategy: str,
                monitor: MonitorSettings | None = None, verifier: Verifier | None = None,
                params: dict[str, Any] | None = None) -> ThinkOutcome:
    """Let ``reasoner`` think (watched when ``monitor`` is set), then answer; see the module doc."""
    t0 = time.perf_counter()
    tags = thinking or Thinking()
    msgs = thinking_messages(messages, thinking)
    question = question_of(messages)
    cont = Continuation(client, reasoner, msgs, prefill=tags.open + "\n", **(params or {}))
    seg = Segmenter()
    rep = RepetitionDetector(window=monitor.repeat_window, repeats=monitor.repeat_count) if monitor else None
    mon = (Monitor(budget=budget, consecutive=monitor.consecutive, under_fraction=monitor.under_fraction,
                   max_thoughts=monitor.max_thoughts, kind=monitor.kind) if monitor else None)
    thoughts: list[dict[str, Any]] = []
    queue: asyncio.Queue = asyncio.Queue()
    errors: list[str] = []
    calls = 0
    streaming = False  # a cut is only meant for the thinking segment
    tokens = 0  # tokens generated so far in the thinking segment (Continuation.live_tokens: exact)

    def decide(d: str, at: int | None = None) -> None:
        emit({"type": "trim", "strategy": strategy, "decision": d, "thought": at, "tokens": tokens,
              "answer": mon.answer if mon else None, "deployment": reasoner})
        if streaming:
            cont.cut()

    def record(thought: str, at_tokens: int, verdict: str, key: str | None, by: str, p_yes: float | None) -> None:
        assert mon is not None
        before = mon.decision
        d = mon.observe(verdict, key, at_tokens, by=by)  # type: ignore[arg-type]
        ob = mon.observations[-1]
        info = {"index": ob.index, "tokens": at_tokens, "chars": len(thought), "answer": ob.key, "by": by,
                "streak": ob.streak}
        if p_yes is not None:
            info["p_yes"] = round(p_yes, 4)
        thoughts.append(info)
        emit({"type": "thought", "strategy": strategy, **info})
        if before == "continue" and d != "continue":
            decide(d, ob.index)

    async def checker() -> None:
        nonlocal calls
        while True:
            thought, at_tokens = await queue.get()
            if mon is None or mon.decision != "continue":
                continue
            c = check_thought(thought, mon.kind)
            if c.verdict == "unsure" and verifier is not None:
                calls += 1
                try:
                    j = await verifier.judge(question, thought)
                    record(thought, at_tokens, "answer" if j.yes else "none", c.key, "verifier", j.p_yes)
                except BackendError as exc:  # a failed check: the answer module's reading stands
                    errors.append(exc.message)
                    record(thought, at_tokens, "none", c.key, "answers", None)
            else:  # without a verifier only a stated answer counts (an unsure thought may be a step's value)
                record(thought, at_tokens, "answer" if c.verdict == "answer" else "none", c.key, "answers", None)

    task = asyncio.get_running_loop().create_task(checker()) if mon else None
    streaming = True
    try:
        async with contextlib.aclosing(cont.stream(max_tokens=budget, stop=[tags.close])) as deltas:
            async for d in deltas:
                tokens = cont.live_tokens or tokens + 1
                emit({"type": "token", "text": d.text, "deployment": reasoner, "kind": "reasoning"})
                if mon is None:
                    seg.feed(d.text)
                    continue
                if rep is not None and rep.feed_text(d.text) and mon.trip("repetition") == "repetition":
                    decide("repetition", len(mon.observations))
                    break
                for th in seg.feed(d.text):
                    queue.put_nowait((th, tokens))
                if mon.decision == "continue" and mon.out_of_budget(tokens):
                    mon.trip("underthinking")
                    decide("underthinking", len(mon.observations))
    finally:
        streaming = False
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    seg.flush()
    think_seg = cont.segments[-1]
    thinking_text = think_seg.text
    decision = mon.decision if mon is not None else "continue"
    if decision != "continue":
        ended = decision
        cont.append(CLOSING[decision] + tags.close + "\n\n")
    elif think_seg.finish_reason == "length":
        ended = "budget"
        cont.append(CLOSING["underthinking"] + tags.close + "\n\n")
    else:
        ended = "closed"
        cont.append(("\n" if not thinking_text.endswith("\n") else "") + tags.close + "\n\n")
    answer_text = await answer_after(cont, emit, strategy, reasoner, answer_tokens)
    kind = monitor.kind if monitor else "auto"
    key, source = final_answer(answer_text, thinking_text, kind, mon.answer if mon is not None else None)
    segs = cont.segments
    thinking_tokens = sum(s.completion_tokens for s in segs[:-1])
    usage = cont.usage
    usage.reasoning_tokens = thinking_tokens
    return ThinkOutcome(thinking=thinking_text, answer_text=answer_text, answer=key or "", answer_from=source,
                        ended=ended,
                        thinking_tokens=thinking_tokens, answer_tokens=segs[-1].completion_tokens, usage=usage,
                        thoughts=thoughts, thought_count=seg.count, verifier_calls=calls,
                        verifier_errors=errors, segments=_segments(cont), latency_s=time.perf_counter() - t0)


__all__ = ["DEFAULT_THINKING_PROMPT", "MonitorSettings", "ThinkOutcome", "think", "thinking_messages",
           "question_of", "answer_after"]
