"""`junto eval`: run a strategy over a labelled dataset (or replay recorded samples) and score it.

    junto eval --strategy sc --dataset arith-easy --samples 5 --limit 10
    junto eval --strategy modelswitch --pool embedded-pair --dataset my.jsonl --json
    junto eval --strategy sc --replay recorded.jsonl --samples 8 --param early_stop=beta

A live run asks every question through the :class:`~junto.facade.Junto` facade, the path ``junto chat``,
the SDK and the gateway take (routing, thought templates, health, the request contract), so it
measures what is served; ``--pool`` takes a junto config, a pool file or a built-in pool name. Answers
are read and graded with :mod:`junto.answers`, the module the strategies vote with.

A dataset is JSONL, one question a line: ``{"question": ..., "answer": ..., "kind": "number"}``
(``kind`` optional: auto, math, number, choice, text). A replay file is JSONL too, one line per
(question, model), samples in the order they were drawn: either raw completions,
``{"question": ..., "reference": ..., "model": ..., "completions": [...], "finish_reasons": [...]}``
(``finish_reasons`` optional), whose answers are extracted again (a completion cut by ``max_tokens``,
finish reason ``"length"``, does not vote unless ``--allow-truncated``), or extracted answers,
``"answers": [...]`` (``null`` for a sample without one). A line with both is read from its
completions. ``--record FILE`` writes one from a live run (completions, finish reasons and answers).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from junto.cli.common import console, err_console, handle_errors, parse_params
from junto.errors import ConfigError, JuntoError

eval_app = typer.Typer(add_completion=False)


def builtin_datasets_dir() -> Path:
    return Path(str(resources.files("junto.configs") / "datasets"))


def find_dataset(ref: str) -> Path:
    p = Path(ref).expanduser()
    if p.is_file():
        return p
    builtin = builtin_datasets_dir() / f"{ref}.jsonl"
    if builtin.is_file():
        return builtin
    names = sorted(x.stem for x in builtin_datasets_dir().glob("*.jsonl"))
    raise ConfigError(f"dataset not found: {ref}",
                      hint=f"pass a JSONL file, or a built-in dataset name ({', '.join(names) or 'none'})")


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    from junto.answers import KINDS
    from junto.jsonl import read_jsonl as read_objects

    rows = []
    for no, row in read_objects(path, required=required):
        kind = row.get("kind", "auto")
        if kind not in KINDS:
            raise ConfigError(f"{path}:{no}: unknown kind {kind!r}", hint=f"one of: {', '.join(KINDS)}")
        rows.append(row)
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    ok = [r for r in rows if r.get("error") is None]
    lat = [r["latency_s"] for r in ok if r.get("latency_s") is not None]
    return {
        "questions": n,
        "correct": sum(1 for r in ok if r["correct"]),
        "accuracy": round(sum(1 for r in ok if r["correct"]) / n, 4) if n else 0.0,
        "errors": n - len(ok),
        "samples": sum(r.get("samples", 0) for r in ok),
        "samples_saved": sum(r.get("samples_saved", 0) for r in ok),
        "completion_tokens": sum(r.get("completion_tokens", 0) for r in ok),
        "prompt_tokens": sum(r.get("prompt_tokens", 0) for r in ok),
        "latency_mean_s": round(statistics.fmean(lat), 4) if lat else None,
        "latency_total_s": round(sum(lat), 4) if lat else None,
    }


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("acc {task.fields[acc]}"), TimeElapsedColumn(), console=err_console,
                    transient=False, disable=not err_console.is_terminal and os.environ.get("JUNTO_PROGRESS") != "1")


def _sample_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``sample`` progress events of one run, in the order the strategy asked for the samples."""
    return sorted((e for e in events if e.get("type") == "sample"), key=lambda e: e.get("index", 0))


async def evaluate(junto, strategy: str, rows: list[dict[str, Any]], params: dict[str, Any], *,
                   allow_truncated: bool = False, on_row=None) -> list[dict[str, Any]]:
    """Ask ``junto`` (a :class:`~junto.facade.Junto`) each row's question with ``strategy`` and grade the answer.

    The request takes the path every front takes (routing, thought templates, health, the request
    contract); the answer is graded with :mod:`junto.answers`. One record per row (answer key,
    correct, samples, tokens, latency); its ``"_samples"`` entry (the sampled texts, their finish
    reasons, models and keys) feeds ``--record`` and is dropped from the output.
    """
    from junto.answers import canonical, extract, is_correct
    from junto.facade import ResultEvent, StrategyEvent
    from junto.reasoning import get_strategy

    declared = get_strategy(strategy).params_model.model_fields
    takes_kind = "answer" in declared
    takes_truncated = "allow_truncated" in declared
    out = []
    for row in rows:
        kind = row.get("kind", "auto")
        p = dict(params)
        if takes_kind and "answer" not in p:
            p["answer"] = kind
        if allow_truncated and takes_truncated:
            p.setdefault("allow_truncated", True)
        messages = [{"role": "user", "content": row["question"]}]
        if row.get("system"):
            messages.insert(0, {"role": "system", "content": row["system"]})
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"id": row.get("id"), "question": row["question"], "reference": str(row["answer"])}
        events: list[dict[str, Any]] = []
        r = None
        try:
            async for ev in junto.astream(messages, strategy=strategy, stream_tokens=False, **p):
                if isinstance(ev, StrategyEvent):
                    events.append(ev.data)
                elif isinstance(ev, ResultEvent):
                    r = ev.result
        except JuntoError as exc:
            if isinstance(exc, ConfigError):
                raise
            rec.update(error=exc.message, correct=False, latency_s=time.perf_counter() - t0)
        if r is not None:
            if r.votes is not None:
                key = r.answer or None
                samples = _sample_events(events)
                detail = {"texts": [e.get("text") for e in samples],
                          "finish_reasons": [e.get("finish_reason") for e in samples],
                          "models": r.extra.get("sample_models") or [e.get("deployment") for e in samples],
                          "keys": r.extra.get("answers") or [e.get("answer") for e in samples]}
            else:  # direct: one answer, read here as a vote would read it
                cut = r.finish_reason == "length" and not allow_truncated
                key = None if cut else canonical(extract(r.text, kind), kind)
                detail = {"texts": [r.text], "finish_reasons": [r.finish_reason], "models": [r.deployment],
                          "keys": [key]}
            rec.update(answer=key, correct=is_correct(key, str(row["answer"]), kind), samples=r.samples,
                       samples_saved=r.extra.get("samples_saved", 0), completion_tokens=r.usage.completion_tokens,
                       prompt_tokens=r.usage.prompt_tokens, latency_s=round(r.latency_s, 4),
                       deployments=r.deployments, votes=r.votes, error=None, sample_answers=detail["keys"],
                       sample_models=detail["models"], text=r.text,
                       routing=r.routing.ranked, _samples=detail)
        out.append(rec)
        if on_row:
            on_row(rec)
    return out


def _entry_key(entry: tuple, kind: str, allow_truncated: bool) -> str | None:
    from junto.answers import answer_key, canonical

    if entry[0] == "answer":
        return canonical(str(entry[1]), kind) if entry[1] is not None else None
    _, text, finish = entry
    if text is None or (finish == "length" and not allow_truncated):
        return None
    return answer_key(text, kind)


def replay(strategy: str, groups: list[dict[str, Any]], params: dict[str, Any], samples: int | None, *,
           allow_truncated: bool = False) -> list[dict[str, Any]]:
    """Score ``strategy``'s voting on recorded samples (no model runs).

    Raw completions are read with :mod:`junto.answers` (a completion whose finish reason is
    ``"length"`` is invalid unless ``allow_truncated``); recorded answers are canonicalized. Equal
    answers share one key across all models of a question, as in a live run.
    """
    from junto.answers import group_keys, is_correct
    from junto.reasoning import validate_params
    from junto.reasoning.replay import replay_modelswitch, replay_sc

    p = validate_params(strategy, params)
    allow = allow_truncated or bool(getattr(p, "allow_truncated", False))
    out = []
    for g in groups:
        kind = g["kind"]
        sizes = [len(entries) for entries in g["samples_by_model"]]
        flat = group_keys([_entry_key(e, kind, allow) for entries in g["samples_by_model"] for e in entries], kind)
        per_model, at = [], 0
        for n in sizes:
            per_model.append(flat[at:at + n])
            at += n
        k = samples or getattr(p, "samples", None) or max(sizes)
        if strategy == "sc":
            r = replay_sc(per_model[0], k, p.early_stop, p.confidence, p.min_samples)
        elif strategy == "modelswitch":
            priors = getattr(p, "prior_weights", None)
            r = replay_modelswitch(per_model, k, p.threshold, p.mode, p.vote, p.models,
                                   **({"prior_weights": priors} if priors is not None else {}))
        elif strategy == "direct":
            r = replay_sc(per_model[0], 1)
        else:
            raise ConfigError(f"replay knows the voting of direct, sc and modelswitch, not {strategy!r}")
        out.append({"question": g["question"], "reference": g["reference"], "answer": r.answer,
                    "correct": is_correct(r.answer, g["reference"], kind), "samples": r.samples,
                    "samples_saved": r.saved, "votes": r.votes, "reason": r.reason, "error": None,
                    "completion_tokens": 0, "prompt_tokens": 0, "latency_s": None})
    return out


def _replay_entries(path: Path, no: int, row: dict[str, Any]) -> list[tuple]:
    """One replay line's samples: raw completions (re-read) when it has them, else recorded answers."""
    if "completions" in row:
        texts = row["completions"]
        if not isinstance(texts, list) or any(t is not None and not isinstance(t, str) for t in texts):
            raise ConfigError(f"{path}: row {no}: 'completions' must be a list of completion texts")
        finish = row.get("finish_reasons")
        if finish is None:
            finish = [None] * len(texts)
        if not isinstance(finish, list) or len(finish) != len(texts):
            raise ConfigError(f"{path}: row {no}: 'finish_reasons' must be a list as long as 'completions'",
                              hint='one finish reason per completion ("stop", "length", or null)')
        return [("text", t, f) for t, f in zip(texts, finish)]
    if "answers" in row:
        if not isinstance(row["answers"], list):
            raise ConfigError(f"{path}: row {no}: 'answers' must be a list of sampled answers")
        return [("answer", a) for a in row["answers"]]
    raise ConfigError(f"{path}: row {no}: no samples", hint="each line needs 'completions' (raw texts) or 'answers'")


def load_replay(path: Path) -> list[dict[str, Any]]:
    rows = read_jsonl(path, ("question", "reference"))
    groups: dict[str, dict[str, Any]] = {}
    for no, row in enumerate(rows, 1):
        entries = _replay_entries(path, no, row)
        g = groups.setdefault(row["question"], {"question": row["question"], "reference": str(row["reference"]),
                                                "kind": row.get("kind", "auto"), "models": [], "samples_by_model": []})
        model = row.get("model", "model")
        if model in g["models"]:
            g["samples_by_model"][g["models"].index(model)].extend(entries)
        else:
            g["models"].append(model)
            g["samples_by_model"].append(entries)
    return list(groups.values())


def write_record(path: Path, records: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """Write a replay file from a live run (one line per question and model), atomically.

    Each line holds the raw completions with their finish reasons (replay re-reads them) and the
    answers the run voted with.
    """
    lines = []
    for rec, row in zip(records, rows):
        detail = rec.get("_samples")
        if rec.get("error") or not detail or not detail["texts"]:
            continue
        by_model: dict[str, dict[str, list]] = {}
        for text, finish, model, key in zip(detail["texts"], detail["finish_reasons"], detail["models"],
                                            detail["keys"]):
            d = by_model.setdefault(model, {"completions": [], "finish_reasons": [], "answers": []})
            d["completions"].append(text)
            d["finish_reasons"].append(finish)
            d["answers"].append(key)
        for m, d in by_model.items():
            lines.append(json.dumps({"question": row["question"], "reference": str(row["answer"]), "model": m,
                                     "kind": row.get("kind", "auto"), **d}))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


@eval_app.command("eval")
def eval_cmd(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="direct, sc, modelswitch")] = "sc",
    dataset: Annotated[Optional[str], typer.Option(help="JSONL file or built-in dataset name (arith-easy)")] = None,
    pool: Annotated[Optional[str], typer.Option(
        "--pool", "-p", help="junto config, pool YAML file or built-in pool name")] = None,
    samples: Annotated[Optional[int], typer.Option(min=1, help="samples per question (per model for modelswitch)")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="only the first N questions")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="most tokens per sample")] = 48,
    temperature: Annotated[Optional[float], typer.Option(min=0.0, max=2.0, help="sampling temperature")] = None,
    seed: Annotated[Optional[int], typer.Option(help="sampling seed (reproducible runs)")] = 0,
    param: Annotated[list[str], typer.Option("--param", help="strategy parameter key=value (repeatable)")] = [],  # noqa: B006
    max_samples: Annotated[Optional[int], typer.Option(min=1, help="cap on samples per question")] = None,
    deadline: Annotated[Optional[float], typer.Option(min=0.001, help="seconds per question")] = None,
    replay_file: Annotated[Optional[Path], typer.Option("--replay", help="score voting on recorded samples; no model")] = None,
    record: Annotated[Optional[Path], typer.Option(help="write the run's samples as a replay file")] = None,
    allow_truncated: Annotated[bool, typer.Option(
        "--allow-truncated", help="let samples cut by max_tokens (finish reason 'length') count as answers")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (summary and rows)")] = False,
    keep: Annotated[bool, typer.Option("--keep/--no-keep", help="leave the pool's servers running afterwards")] = True,
) -> None:
    """Score a strategy on a labelled dataset: accuracy, samples and tokens used, latency."""
    handle_errors(_eval)(strategy, dataset, pool, samples, limit, max_tokens, temperature, seed, param, max_samples,
                         deadline, replay_file, record, allow_truncated, as_json, keep)


def _eval(strategy, dataset, pool_ref, samples, limit, max_tokens, temperature, seed, param, max_samples, deadline,
          replay_file, record, allow_truncated, as_json, keep) -> None:
    from junto.reasoning import get_strategy

    get_strategy(strategy)
    params = parse_params(param)
    t0 = time.perf_counter()
    if replay_file is not None:
        if dataset is not None:
            raise ConfigError("--replay and --dataset exclude each other", hint="replay scores recorded samples only")
        groups = load_replay(replay_file)[:limit]
        rows = replay(strategy, groups, params, samples, allow_truncated=allow_truncated)
        source = str(replay_file)
    else:
        if dataset is None:
            raise ConfigError("no dataset", hint="pass --dataset FILE.jsonl (or arith-easy), or --replay FILE")
        data = read_jsonl(find_dataset(dataset), ("question", "answer"))[:limit]
        params = {"max_tokens": max_tokens, **params}
        if temperature is not None:
            params["temperature"] = temperature
        if seed is not None:
            params.setdefault("seed", seed)
        if samples is not None:
            params["samples"] = samples
        if max_samples is not None:
            params["max_samples"] = max_samples
        if deadline is not None:
            params["deadline_s"] = deadline
        rows = _live(strategy, data, pool_ref, params, allow_truncated, keep, as_json)
        if record is not None:
            write_record(record, rows, data)
        for r in rows:
            r.pop("_samples", None)
        source = dataset
    summary = {"strategy": strategy, "dataset": source, "params": params, **summarize(rows),
               "wall_s": round(time.perf_counter() - t0, 3), "replay": replay_file is not None}
    if as_json:
        typer.echo(json.dumps({"summary": summary, "rows": rows}))
        return
    _print_summary(summary)


def _live(strategy, data, pool_ref, params, allow_truncated, keep, quiet) -> list[dict[str, Any]]:
    """Run the dataset through the :class:`~junto.facade.Junto` facade, as ``junto chat`` and the gateway do."""
    from junto.cli.pool import bring_up
    from junto.facade import Junto

    junto = Junto.from_config(pool_ref, keep=keep)
    junto.prepare(strategy, params)  # the request contract: a bad option fails here, before any server starts
    bring_up(junto.up, junto.pool.name, quiet=quiet)
    try:
        with _progress() as progress:
            task = progress.add_task(f"{strategy} on {junto.pool.name}", total=len(data), acc="-")
            done: list[dict[str, Any]] = []

            def on_row(rec: dict[str, Any]) -> None:
                done.append(rec)
                progress.update(task, advance=1, acc=f"{sum(r['correct'] for r in done) / len(done):.0%}")

            async def run() -> list[dict[str, Any]]:
                junto.keep = True  # servers are stopped below, once the event loop is gone
                async with junto:
                    return await evaluate(junto, strategy, data, params, allow_truncated=allow_truncated,
                                          on_row=on_row)

            return asyncio.run(run())
    finally:
        if not keep:
            junto.stop_started()


def _print_summary(s: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"junto eval · {s['strategy']} on {s['dataset']}" + (" (replay)" if s["replay"] else ""))
    table.add_column("metric")
    table.add_column("value", justify="right")
    n = s["questions"] or 1
    table.add_row("accuracy", f"{s['accuracy']:.1%} ({s['correct']}/{s['questions']})")
    table.add_row("samples (mean/question)", f"{s['samples']} ({s['samples'] / n:.2f})")
    table.add_row("samples saved by early stopping", str(s["samples_saved"]))
    if not s["replay"]:
        table.add_row("completion tokens (mean)", f"{s['completion_tokens']} ({s['completion_tokens'] / n:.1f})")
        table.add_row("prompt tokens", str(s["prompt_tokens"]))
        if s["latency_mean_s"] is not None:
            table.add_row("latency mean / total", f"{s['latency_mean_s']:.2f} s / {s['latency_total_s']:.1f} s")
        table.add_row("errors", str(s["errors"]))
    console.print(table)


@eval_app.command("eval-trimr")
def eval_trimr_cmd(
    traces: Annotated[Path, typer.Argument(help="JSONL of {question, answer, trace} (docs/reasoning.md, TrimR traces)")],
    pool: Annotated[Optional[str], typer.Option("--pool", "-p", help="pool holding the verifier deployment")] = None,
    verifier: Annotated[Optional[str], typer.Option(
        help="verifier deployment for thoughts the answer module is unsure of (default: the answer module only)")] = None,
    budget: Annotated[int, typer.Option(min=16, help="thinking budget in tokens (underthinking at --under of it)")] = 2048,
    under: Annotated[float, typer.Option(min=0.01, max=1.0, help="underthinking: share of the budget")] = 0.5,
    consecutive: Annotated[int, typer.Option(min=2, help="overthinking: consecutive equivalent answers (M)")] = 2,
    max_thoughts: Annotated[int, typer.Option(min=1, help="underthinking: thoughts without convergence")] = 20,
    limit: Annotated[Optional[int], typer.Option(min=1, help="only the first N traces")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (summary and rows)")] = False,
    keep: Annotated[bool, typer.Option("--keep/--no-keep", help="leave a verifier server this call started running")] = False,
) -> None:
    """Replay recorded thinking traces through TrimR: where it would cut, tokens saved, answer at the cut vs gold."""
    handle_errors(_eval_trimr)(traces, pool, verifier, budget, under, consecutive, max_thoughts, limit, as_json, keep)


def _eval_trimr(traces, pool_ref, verifier, budget, under, consecutive, max_thoughts, limit, as_json, keep) -> None:
    from junto.reasoning.trimr.offline import load_traces, replay_trace
    from junto.reasoning.trimr.offline import summarize as summarize_traces

    rows = load_traces(traces)[:limit]
    kw = {"budget": budget, "under_fraction": under, "consecutive": consecutive, "max_thoughts": max_thoughts}

    async def replay_all(judge=None) -> list[dict[str, Any]]:
        return [await replay_trace(r, judge=judge, **kw) for r in rows]

    launcher = started = None
    if verifier is None:
        if pool_ref is not None:
            raise ConfigError("--pool is only used with --verifier", hint="name the verifier deployment: --verifier NAME")
        out = asyncio.run(replay_all())
    else:
        from junto.pool.capabilities import require
        from junto.pool.client import PoolClient
        from junto.pool.config import load_pool
        from junto.pool.launcher import Launcher
        from junto.reasoning.trimr.verifier import verifier_for

        full = load_pool(pool_ref)
        dep = full.deployment(verifier)
        require(dep, "logprobs", "top_logprobs", purpose="junto eval-trimr --verifier")
        # start (or find running) only the verifier's server
        sub = full.model_copy(update={"deployments": [dep], "arms": [], "default": None, "router": None})
        launcher = Launcher(sub)
        endpoints, started = bring_up_quiet(launcher, as_json)

        async def with_verifier() -> list[dict[str, Any]]:
            async with PoolClient(sub, endpoints) as client:
                v = verifier_for(client, verifier)

                async def judge(question: str, thought: str) -> bool:
                    return (await v.judge(question, thought)).yes

                return await replay_all(judge)

        try:
            out = asyncio.run(with_verifier())
        finally:
            if not keep and started:
                launcher.down(started)
    summary = {"traces": str(traces), "verifier": verifier, **kw, **summarize_traces(out)}
    if as_json:
        typer.echo(json.dumps({"summary": summary, "rows": out}))
        return
    from rich.table import Table

    table = Table(title=f"TrimR offline · {traces}" + (f" · verifier {verifier}" if verifier else " · answer module"))
    for col in ("#", "decision", "cut at thought", "tokens saved", "answer at cut", "uncut", "gold"):
        table.add_column(col)
    for i, r in enumerate(out):
        mark = lambda ok: "✓" if ok else "✗"  # noqa: E731
        table.add_row(str(i), r["decision"], "" if r["cut_thought"] is None else f"{r['cut_thought']}/{r['thoughts']}",
                      f"{r['tokens_saved']}/{r['tokens_total']}",
                      "" if r["decision"] == "none" else f"{r['answer_at_cut']} {mark(r['correct_at_cut'])}",
                      f"{r['answer_uncut']} {mark(r['correct_uncut'])}", r["gold"])
    console.print(table)
    approx = "~" if summary["tokens_estimated"] else ""
    console.print(f"cut {summary['cut']}/{summary['traces']} traces · saved {approx}{summary['tokens_saved']} of "
                  f"{approx}{summary['tokens_total']} thinking tokens ({summary['saved_share']:.1%}) · accuracy "
                  f"{summary['accuracy_uncut']:.1%} uncut, {summary['accuracy_at_cut']:.1%} with the cuts"
                  + (f" · {summary['verifier_calls']} verifier calls" if verifier else ""))


def bring_up_quiet(launcher, quiet: bool):
    from junto.cli.pool import bring_up

    return bring_up(lambda progress: launcher.up(progress=progress), launcher.pool.name, quiet=quiet)
