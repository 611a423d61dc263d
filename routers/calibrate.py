"""Calibration: run every deployment of a pool over a labelled dataset and write routing records.

The dataset is JSONL, one item per line::

    {"id": "q1", "question": "...", "answer": "B" | ["Paris", "paris, france"], "metric": "mc",
     "choices": ["...", "..."]}          # choices only for metric "mc"

``metric`` is one of :data:`junto.answers.METRICS`. The output is the shared routing
format, one JSON object per line, with what each answer cost beside its score::

    {"question": ..., "scores": {deployment: score},
     "usage": {deployment: {"prompt_tokens": 31, "completion_tokens": 58, "latency_s": 0.42, "cost": 0.0}}}

``cost`` is in US dollars from the deployment's ``price`` in the pool file (0 for a local model
without one); tokens are the server's counts. Avengers-Pro ranks by these realized costs
(:mod:`junto.routers.avengers`); readers that know only ``scores`` ignore ``usage``. Progress
lines written before usage was recorded lack some of these fields: their records then carry only
what is known (or no ``usage`` at all), and still load.

Resumable: every graded (item, deployment) pair is appended to ``<out>.progress.jsonl`` and
fsynced before the next one starts, so an interrupted run loses at most the answers in flight and a
rerun skips every pair already graded. A torn last line (killed mid-write) is ignored. The records
file itself is written atomically once all pairs are graded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from junto.answers import METRICS, grade
from junto.errors import ConfigError, JuntoError
from junto.paths import atomic_write_text
from junto.routers.base import USAGE_FIELDS


@dataclass
class Item:
    id: str
    question: str
    answer: str | list[str]
    metric: str
    choices: list[str] | None = None

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.id}\x00{self.question}".encode()).hexdigest()[:24]


def parse_dataset(lines: list[str], source: str = "<dataset>") -> list[Item]:
    from junto.routers.tasks import EXTRA_METRICS, check_reference

    from junto.jsonl import parse_lines

    items: list[Item] = []
    for n, d in parse_lines(lines, source, hint="one JSON object per line: question, answer, metric"):
        q, a, metric = d.get("question"), d.get("answer"), d.get("metric")
        if not isinstance(q, str) or not q.strip():
            raise ConfigError(f"{source}: line {n} has no 'question'", hint="each item needs question, answer, metric")
        if not (isinstance(a, str) or (isinstance(a, list) and a and all(isinstance(x, str) for x in a))):
            raise ConfigError(f"{source}: line {n} has no 'answer' (a string or a list of strings)",
                              hint="each item needs question, answer, metric")
        if metric not in METRICS + EXTRA_METRICS:
            raise ConfigError(f"{source}: line {n}: metric {metric!r} is not one of "
                              f"{', '.join(METRICS + EXTRA_METRICS)}",
                              hint="mc (letter), numeric, math, exact, f1, code (tests run in a sandbox) or "
                                   "coverage (concept words)")
        if (problem := check_reference(metric, a)) is not None:
            raise ConfigError(f"{source}: line {n}: {problem}")
        choices = d.get("choices")
        if metric == "mc" and not (isinstance(choices, list) and len(choices) >= 2):
            raise ConfigError(f"{source}: line {n}: metric 'mc' needs 'choices' (a list of at least 2 options)")
        items.append(Item(str(d.get("id", n)), q, a, metric, choices if isinstance(choices, list) else None))
    if not items:
        raise ConfigError(f"{source}: no items", hint="one JSON object per line: question, answer, metric")
    keys = [i.key for i in items]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{source}: two items share the same id and question", hint="give every item its own id")
    return items


def load_dataset(path: str | os.PathLike[str]) -> list[Item]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"dataset not found: {p}", hint="a JSONL file of {question, answer, metric}")
    try:
        return parse_dataset(p.read_text(encoding="utf-8").split("\n"), str(p))  # not splitlines(): U+2028 in strings
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read dataset {p}: {exc}") from None


def build_messages(item: Item) -> list[dict[str, str]]:
    """The prompt for one item: the question, lettered options for mc, and the answer format."""
    text = item.question.strip()
    if item.metric == "mc":
        opts = "\n".join(f"{'ABCDEFGHIJ'[i]}. {c}" for i, c in enumerate(item.choices or []))
        text += f"\n\n{opts}\n\nReply with the letter of the correct option, as 'Answer: X'."
    elif item.metric in ("numeric", "math"):
        text += "\n\nEnd with the final answer on its own line, as 'Answer: <value>'."
    elif item.metric in ("code", "coverage"):
        from junto.routers.tasks import code_prompt, coverage_prompt

        text = code_prompt(item.question) if item.metric == "code" else coverage_prompt(item.question)
    else:
        text += "\n\nAnswer in a few words."
    return [{"role": "user", "content": text}]


def score_answer(item: Item, text: str) -> float:
    if item.metric in ("code", "coverage"):  # code runs in junto.sandbox; see junto.routers.tasks
        from junto.routers.tasks import grade_item

        return grade_item(item.metric, text, item.answer, question=item.question)
    return grade(item.metric, text, item.answer, n_choices=len(item.choices or []) or 5)


@dataclass
class Graded:
    """One graded answer: its score and, when known, what it cost (None = not recorded)."""

    score: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    cost: float | None = None

    def usage(self) -> dict[str, int | float]:
        """The known usage fields, as the records' ``usage`` entry for this answer."""
        return {f: getattr(self, f) for f in USAGE_FIELDS if getattr(self, f) is not None}


def _number(v: Any, kind: type) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0:
        return None
    return kind(v)


def read_progress(path: Path) -> dict[tuple[str, str], Graded]:
    """Graded pairs so far; a torn or foreign line is skipped, not fatal; missing usage fields are None."""
    done: dict[tuple[str, str], Graded] = {}
    if not path.is_file():
        return done
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                d = json.loads(line)
                done[(d["item"], d["deployment"])] = Graded(
                    float(d["score"]), _number(d.get("prompt_tokens"), int), _number(d.get("completion_tokens"), int),
                    _number(d.get("latency_s"), float), _number(d.get("cost"), float))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                continue
    return done


def _append(fh, entry: dict[str, Any]) -> None:
    fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def progress_path(out: Path) -> Path:
    return out.with_name(out.name + ".progress.jsonl")


@dataclass
class Answered:
    """What one arm answered to one item, and what the answer cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cost: float
    estimated: bool = False


#: answers an item's messages with one arm: ``await answer(arm_name, messages)``
AnswerFn = Callable[[str, list[dict[str, str]]], Awaitable[Answered]]


def facade_answer(junto: Any, *, max_tokens: int = 256, temperature: float = 0.0, seed: int | None = 0) -> AnswerFn:
    """Answer with the pool's arms through the ``Junto`` facade — the path chat, the SDK and the gateway serve.

    Each arm runs its own strategy on its own deployment with its parameters; ``temperature`` and
    ``seed`` apply to ``direct`` arms (a sampling strategy keeps its own temperature), ``max_tokens``
    to every model call.
    """
    async def answer(arm_name: str, messages: list[dict[str, str]]) -> Answered:
        arm = junto.pool.arm(arm_name)
        opts: dict[str, Any] = {"max_tokens": max_tokens, **arm.params}
        if arm.strategy == "direct":
            opts = {"temperature": temperature, **({"seed": seed} if seed is not None else {}), **opts}
        r = await junto.achat(arm.messages(messages), strategy=arm.strategy, deployment=arm.deployment, **opts)
        return Answered(r.text if r.votes is None else (r.answer or r.text), int(r.usage.prompt_tokens),
                        int(r.usage.completion_tokens), float(r.latency_s), float(r.cost_usd),
                        bool(r.usage.estimated))
    return answer


async def calibrate(answer: AnswerFn, arms: list[str], items: list[Item], out: Path, *,
                    on_result: Callable[[Item, str, float, bool], None] | None = None,
                    on_error: Callable[[Item, str, Exception], None] | None = None) -> dict[str, Any]:
    """Grade every (item, arm) pair not already in the progress file; write the records.

    A failed answer (a deployment down, a timeout) is not graded and not fatal: it is reported in the
    summary's ``failed`` (and to ``on_error``), the other pairs go on, and the records hold the items
    every arm has graded; a rerun tries the failed pairs again.

    ``answer`` answers with one arm (:func:`facade_answer`: a deployment, or a (deployment, strategy,
    parameters) arm of :mod:`junto.arms`); records are keyed by arm name, which is the deployment's
    name for a pool that lists no arms. Arms answer one item concurrently; items go one after another
    so progress is saved steadily. Each progress line and record keeps the answer's prompt and
    completion tokens, latency and cost. Returns a summary: pairs done now, pairs skipped (resumed),
    per-arm mean score, and per-arm mean cost, completion tokens and latency.
    """
    deployments = arms
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    prog = progress_path(out)
    done = read_progress(prog)
    skipped = sum(1 for it in items for d in deployments if (it.key, d) in done)
    if on_result:
        for it in items:
            for d in deployments:
                if (it.key, d) in done:
                    on_result(it, d, done[(it.key, d)].score, True)
    new = 0
    failures: list[dict[str, str]] = []
    with open(prog, "a", encoding="utf-8") as fh:
        for it in items:
            todo = [d for d in deployments if (it.key, d) not in done]
            if not todo:
                continue
            msgs = build_messages(it)
            results = await asyncio.gather(*(answer(d, msgs) for d in todo), return_exceptions=True)
            for d, res in zip(todo, results):
                if isinstance(res, BaseException):
                    if not isinstance(res, JuntoError):
                        raise res
                    # not graded: a rerun tries this pair again; the other pairs go on
                    failures.append({"item": it.id, "arm": d, "error": res.message})
                    if on_error:
                        on_error(it, d, res)
                    continue
                s = await asyncio.to_thread(score_answer, it, res.text)  # code runs in a sandbox: seconds, maybe
                g = Graded(s, res.prompt_tokens, res.completion_tokens, round(res.latency_s, 3), res.cost)
                _append(fh, {"item": it.key, "id": it.id, "deployment": d, "score": s, "answer": res.text[:2000],
                             **g.usage(), "usage_estimated": res.estimated})
                done[(it.key, d)] = g
                new += 1
                if on_result:
                    on_result(it, d, s, False)
    records = []
    complete = [it for it in items if all((it.key, d) in done for d in deployments)]
    if not complete:
        raise JuntoError(f"no item was graded by every arm ({len(failures)} answer(s) failed; first: "
                         f"{failures[0]['arm'] + ': ' + failures[0]['error'] if failures else 'none'})",
                         hint="check the pool (junto pool status) and rerun: graded answers are kept")
    items = complete  # records need every arm's score; a rerun completes the rest
    for it in items:
        rec: dict[str, Any] = {"question": it.question, "scores": {d: done[(it.key, d)].score for d in deployments}}
        usage = {d: u for d in deployments if (u := done[(it.key, d)].usage())}
        if usage:
            rec["usage"] = usage
        records.append(rec)
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    means = {d: sum(r["scores"][d] for r in records) / len(records) for d in deployments}

    def mean_of(field: str) -> dict[str, float]:
        out_: dict[str, float] = {}
        for d in deployments:
            vals = [v for it in items if (v := getattr(done[(it.key, d)], field)) is not None]
            if vals:
                out_[d] = sum(vals) / len(vals)
        return out_

    return {"records": len(records), "graded_now": new, "resumed": skipped, "failed": failures, "mean_score": means,
            "mean_cost": mean_of("cost"), "mean_completion_tokens": mean_of("completion_tokens"),
            "mean_latency_s": mean_of("latency_s"), "out": str(out), "progress": str(prog)}
