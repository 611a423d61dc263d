"""Offline TrimR: replay recorded thinking traces thought by thought through the same decisions.

**Trace file format** (JSONL, one trace a line)::

    {"question": "...", "answer": "72", "trace": "<the thinking text, without the <think> tags>",
     "model": "...", "source": "...", "thinking_tokens": 338, "final": "..."}

``question``, ``answer`` (the gold answer) and ``trace`` are required; ``model`` and ``source`` are
carried through; ``thinking_tokens`` (the trace's token count as its server reported it) makes the
token figures exact at the ends and proportional in between — without it tokens are estimated at
4 characters a token (``tokens_estimated: true``); ``final`` (the answer the model wrote after
``</think>``) is graded as the uncut answer when present, else the last answer the trace reaches.
A trace wrapped in ``<think>…</think>`` is unwrapped.

For each trace the replay reports where TrimR would cut (thought index, characters, tokens), why
(``overthinking``, ``underthinking``, ``repetition`` or ``none``), the tokens saved, and whether the
answer at the cut (the answer the converged thoughts reached) equals the gold answer — beside
whether the uncut answer does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from junto.answers import AnswerKind, canonical, extract, is_correct
from junto.errors import ConfigError
from junto.jsonl import read_jsonl
from junto.reasoning.trimr.logic import Monitor, RepetitionDetector, Segmenter, check_thought

REQUIRED = ("question", "answer", "trace")

#: ``judge(question, thought) -> bool``: the verifier's verdict on an unsure thought
Judge = Callable[[str, str], Awaitable[bool]]


def load_traces(path: Path) -> list[dict[str, Any]]:
    """Read a trace file; a clear :class:`ConfigError` naming the line for anything malformed."""
    hint = "one JSON object a line: {\"question\", \"answer\", \"trace\"} (docs/reasoning.md, TrimR traces)"
    rows = []
    for no, row in read_jsonl(path, required=REQUIRED, hint=hint, allow_empty=True):
        if not isinstance(row["trace"], str) or not isinstance(row["question"], str):
            raise ConfigError(f"{path}:{no}: 'question' and 'trace' must be strings")
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: no traces in the file", hint=hint)
    return rows


def _unwrap(trace: str) -> str:
    t = trace.strip()
    if t.startswith("<think>"):
        t = t[len("<think>"):]
    end = t.find("</think>")
    return t[:end] if end >= 0 else t


async def replay_trace(row: dict[str, Any], *, budget: int = 2048, consecutive: int = 2,
                       under_fraction: float = 0.5, max_thoughts: int = 20, kind: AnswerKind = "auto",
                       judge: Judge | None = None, repeat_window: int = 24) -> dict[str, Any]:
    """Replay one trace; see the module doc for what is reported."""
    trace = _unwrap(row["trace"])
    total_chars = max(len(trace), 1)
    exact = isinstance(row.get("thinking_tokens"), int) and row["thinking_tokens"] > 0
    total_tokens = row["thinking_tokens"] if exact else -(-len(trace) // 4)

    def tokens_at(chars: int) -> int:
        return round(total_tokens * chars / total_chars)

    mon = Monitor(budget=budget, consecutive=consecutive, under_fraction=under_fraction, max_thoughts=max_thoughts,
                  kind=kind)
    rep = RepetitionDetector(window=repeat_window)
    seg = Segmenter()
    thoughts: list[dict[str, Any]] = []
    cut_chars: int | None = None
    verifier_calls = 0
    # feed the trace line by line, as a stream would arrive: the same segmenter as the live strategy
    pos = 0
    pieces = trace.splitlines(keepends=True) or [trace]
    pending: deque[tuple[str, int]] = deque()
    for piece in pieces:
        pos += len(piece)
        if rep.feed_text(piece):
            mon.trip("repetition")
            cut_chars = pos
            break
        pending.extend((t, pos) for t in seg.feed(piece))
        if mon.out_of_budget(tokens_at(pos)) and mon.decision == "continue" and not pending:
            mon.trip("underthinking")
            cut_chars = pos
            break
        while pending and mon.decision == "continue":
            thought, at = pending.popleft()
            verdict, key, by = await _check(row["question"], thought, kind, judge)
            verifier_calls += by == "verifier"
            d = mon.observe(verdict, key, tokens_at(at), by=by)
            thoughts.append({"index": len(thoughts), "chars": len(thought), "answer": key if verdict == "answer"
                             else None, "by": by, "decision": d})
            if d != "continue":
                cut_chars = min(at, _end_of(trace, thought, at))
        if mon.decision != "continue":
            break
    if mon.decision == "continue":
        rest = [t for t, _ in pending] + seg.flush()
        for thought in rest:
            verdict, key, by = await _check(row["question"], thought, kind, judge)
            verifier_calls += by == "verifier"
            d = mon.observe(verdict, key, total_tokens, by=by)
            thoughts.append({"index": len(thoughts), "chars": len(thought), "answer": key if verdict == "answer"
                             else None, "by": by, "decision": d})
            if d != "continue":
                cut_chars = len(trace)
                break
    decision = mon.decision if mon.decision != "continue" else "none"
    cut = cut_chars if decision != "none" else None
    gold = str(row["answer"])
    at_cut = mon.answer
    uncut_text = row.get("final") or trace
    uncut = canonical(extract(uncut_text, kind), kind)
    saved = total_tokens - tokens_at(cut) if cut is not None else 0
    return {"question": row["question"], "gold": gold, "model": row.get("model"), "source": row.get("source"),
            "thoughts": len(thoughts), "decision": decision,
            "cut_thought": thoughts[-1]["index"] if decision != "none" and thoughts else None,
            "cut_chars": cut, "trace_chars": len(trace), "tokens_total": total_tokens,
            "tokens_at_cut": tokens_at(cut) if cut is not None else total_tokens, "tokens_saved": max(saved, 0),
            "tokens_estimated": not exact, "answer_at_cut": at_cut,
            "correct_at_cut": at_cut is not None and is_correct(at_cut, gold, kind),
            "answer_uncut": uncut, "correct_uncut": uncut is not None and is_correct(uncut, gold, kind),
            "verifier_calls": verifier_calls, "trail": thoughts}


def _end_of(trace: str, thought: str, limit: int) -> int:
    """Where ``thought`` ends in ``trace`` (searched backwards from ``limit``)."""
    i = trace.rfind(thought, 0, limit)
    return i + len(thought) if i >= 0 else limit


async def _check(question: str, thought: str, kind: AnswerKind, judge: Judge | None) -> tuple[str, str | None, str]:
    c = check_thought(thought, kind)
    if c.verdict != "unsure":
        return c.verdict, c.key, "answers"
    if judge is None:
        return "none", c.key, "answers"   # answers only: only a stated answer counts
    return ("answer" if await judge(question, thought) else "none"), c.key, "verifier"


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows) or 1
    total = sum(r["tokens_total"] for r in rows)
    saved = sum(r["tokens_saved"] for r in rows)
    cuts = [r for r in rows if r["decision"] != "none"]
    by: dict[str, int] = {}
    for r in rows:
        by[r["decision"]] = by.get(r["decision"], 0) + 1
    return {"traces": len(rows), "cut": len(cuts), "decisions": by, "tokens_total": total, "tokens_saved": saved,
            "saved_share": round(saved / total, 4) if total else 0.0,
            "accuracy_uncut": round(sum(r["correct_uncut"] for r in rows) / n, 4),
            "accuracy_at_cut": round(sum(r["correct_at_cut"] if r["decision"] != "none" else r["correct_uncut"]
                                         for r in rows) / n, 4),
            "tokens_estimated": any(r["tokens_estimated"] for r in rows),
            "verifier_calls": sum(r["verifier_calls"] for r in rows)}


__all__ = ["REQUIRED", "load_traces", "replay_trace", "summarize"]
