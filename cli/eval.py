"""`junto eval`: run a strategy over a labelled dataset (or replay recorded samples) and score it.

    junto eval --strategy sc --dataset arith-easy --samples 5 --limit 10
    junto eval --strategy modelswitch --pool embedded-pair --dataset my.jsonl --json
    junto eval --strategy sc --replay recorded.jsonl --samples 8 --param early_stop=beta

A dataset is JSONL, one question a line: ``{"question": ..., "answer": ..., "kind": "number"}``
(``kind`` optional: auto, math, number, choice, text). A replay file is JSONL too, one line per
(question, model): ``{"question": ..., "reference": ..., "model": ..., "answers": [...]}`` in the
order the samples were drawn; ``--record FILE`` writes one from a live run.
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
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    rows = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{path}:{no}: not valid JSON ({exc.msg})",
                              hint="one JSON object per line (JSONL)") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{no}: each line must be a JSON object", hint="one JSON object per line")
        missing = [k for k in required if k not in row]
        if missing:
            raise ConfigError(f"{path}:{no}: missing field(s) {', '.join(missing)}",
                              hint=f"each line needs: {', '.join(required)}")
        kind = row.get("kind", "auto")
        from junto.reasoning.answers import KINDS

        if kind not in KINDS:
            raise ConfigError(f"{path}:{no}: unknown kind {kind!r}", hint=f"one of: {', '.join(KINDS)}")
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: no rows", hint="the file must hold at least one JSON line")
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


async def evaluate(pool, endpoints: dict[str, str], strategy: str, rows: list[dict[str, Any]],
                   params: dict[str, Any], *, max_samples: int | None = None, deadline_s: float | None = None,
                   on_row=None) -> list[dict[str, Any]]:
    """Run ``strategy`` on each row; one record per row (answer key, correct, samples, tokens, latency)."""
    from junto.pool.client import PoolClient
    from junto.reasoning import RunContext, get_strategy, run_strategy
    from junto.reasoning.answers import canonical, extract, is_correct

    takes_kind = "answer" in get_strategy(strategy).params_model.model_fields
    default = pool.default_deployment.name
    candidates = [default] + [d.name for d in pool.deployments if d.name != default]
    out = []
    async with PoolClient(pool, endpoints) as client:
        ctx = RunContext(client=client, pool=pool, candidates=candidates, max_samples=max_samples,
                         max_tokens=params.get("max_tokens"), deadline_s=deadline_s)
        for row in rows:
            kind = row.get("kind", "auto")
            p = {**params, **({"answer": kind} if takes_kind and "answer" not in params else {})}
            messages = [{"role": "user", "content": row["question"]}]
            if row.get("system"):
                messages.insert(0, {"role": "system", "content": row["system"]})
            t0 = time.perf_counter()
            rec: dict[str, Any] = {"id": row.get("id"), "question": row["question"], "reference": str(row["answer"])}
            try:
                r = await run_strategy(strategy, ctx, messages, p)
            except JuntoError as exc:
                if isinstance(exc, ConfigError):
                    raise
                rec.update(error=exc.message, correct=False, latency_s=time.perf_counter() - t0)
            else:
                key = r.answer if r.votes is not None else canonical(extract(r.text, kind), kind)
                rec.update(answer=key, correct=is_correct(key, str(row["answer"]), kind), samples=r.samples,
                           samples_saved=r.samples_saved, completion_tokens=r.usage.completion_tokens,
                           prompt_tokens=r.usage.prompt_tokens, latency_s=round(r.latency_s, 4),
                           deployments=r.deployments, votes=r.votes, error=None,
                           sample_answers=r.extra.get("answers"), sample_models=r.extra.get("sample_models"),
                           text=r.text)
            out.append(rec)
            if on_row:
                on_row(rec)
    return out


def replay(strategy: str, groups: list[dict[str, Any]], params: dict[str, Any], samples: int | None
           ) -> list[dict[str, Any]]:
    """Score ``strategy``'s voting on recorded answers (no model runs)."""
    from junto.reasoning import validate_params
    from junto.reasoning.answers import canonical, group_keys, is_correct
    from junto.reasoning.replay import replay_modelswitch, replay_sc

    p = validate_params(strategy, params)
    out = []
    for g in groups:
        kind = g["kind"]
        per_model = [group_keys([canonical(str(a) if a is not None else None, kind) for a in answers], kind)
                     for answers in g["answers_by_model"]]
        k = samples or getattr(p, "samples", None) or max(len(x) for x in per_model)
        if strategy == "sc":
            r = replay_sc(per_model[0], k, p.early_stop, p.confidence, p.min_samples)
        elif strategy == "modelswitch":
            r = replay_modelswitch(per_model, k, p.threshold, p.mode, p.vote, p.models)
        elif strategy == "direct":
            r = replay_sc(per_model[0], 1)
        else:
            raise ConfigError(f"replay knows the voting of direct, sc and modelswitch, not {strategy!r}")
        out.append({"question": g["question"], "reference": g["reference"], "answer": r.answer,
                    "correct": is_correct(r.answer, g["reference"], kind), "samples": r.samples,
                    "samples_saved": r.saved, "votes": r.votes, "reason": r.reason, "error": None,
                    "completion_tokens": 0, "prompt_tokens": 0, "latency_s": None})
    return out


def load_replay(path: Path) -> list[dict[str, Any]]:
    rows = read_jsonl(path, ("question", "reference", "answers"))
    groups: dict[str, dict[str, Any]] = {}
    for no, row in enumerate(rows, 1):
        if not isinstance(row["answers"], list):
            raise ConfigError(f"{path}: row {no}: 'answers' must be a list of sampled answers")
        g = groups.setdefault(row["question"], {"question": row["question"], "reference": str(row["reference"]),
                                                "kind": row.get("kind", "auto"), "models": [], "answers_by_model": []})
        model = row.get("model", "model")
        if model in g["models"]:
            g["answers_by_model"][g["models"].index(model)].extend(row["answers"])
        else:
            g["models"].append(model)
            g["answers_by_model"].append(list(row["answers"]))
    return list(groups.values())


def write_record(path: Path, records: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """Write a replay file from a live run (one line per question and model), atomically."""
    lines = []
    for rec, row in zip(records, rows):
        if rec.get("error") or not rec.get("sample_answers"):
            continue
        by_model: dict[str, list] = {}
        for a, m in zip(rec["sample_answers"], rec.get("sample_models") or []):
            by_model.setdefault(m, []).append(a)
        for m, answers in by_model.items():
            lines.append(json.dumps({"question": row["question"], "reference": str(row["answer"]), "model": m,
                                     "kind": row.get("kind", "auto"), "answers": answers}))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


@eval_app.command("eval")
def eval_cmd(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="direct, sc, modelswitch")] = "sc",
    dataset: Annotated[Optional[str], typer.Option(help="JSONL file or built-in dataset name (arith-easy)")] = None,
    pool: Annotated[Optional[str], typer.Option("--pool", "-p", help="pool YAML file or built-in pool name")] = None,
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
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (summary and rows)")] = False,
    keep: Annotated[bool, typer.Option("--keep/--no-keep", help="leave the pool's servers running afterwards")] = True,
) -> None:
    """Score a strategy on a labelled dataset: accuracy, samples and tokens used, latency."""
    handle_errors(_eval)(strategy, dataset, pool, samples, limit, max_tokens, temperature, seed, param, max_samples,
                         deadline, replay_file, record, as_json, keep)


def _eval(strategy, dataset, pool_ref, samples, limit, max_tokens, temperature, seed, param, max_samples, deadline,
          replay_file, record, as_json, keep) -> None:
    from junto.reasoning import get_strategy, validate_params

    get_strategy(strategy)
    params = parse_params(param)
    t0 = time.perf_counter()
    if replay_file is not None:
        if dataset is not None:
            raise ConfigError("--replay and --dataset exclude each other", hint="replay scores recorded samples only")
        groups = load_replay(replay_file)[:limit]
        rows = replay(strategy, groups, params, samples)
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
        validate_params(strategy, params)
        rows = _live(strategy, data, pool_ref, params, max_samples, deadline, keep, as_json)
        if record is not None:
            write_record(record, rows, data)
        source = dataset
    summary = {"strategy": strategy, "dataset": source, "params": params, **summarize(rows),
               "wall_s": round(time.perf_counter() - t0, 3), "replay": replay_file is not None}
    if as_json:
        typer.echo(json.dumps({"summary": summary, "rows": rows}))
        return
    _print_summary(summary)


def _live(strategy, data, pool_ref, params, max_samples, deadline, keep, quiet) -> list[dict[str, Any]]:
    from junto.cli.pool import bring_up
    from junto.paths import state_dir
    from junto.pool.config import load_pool
    from junto.pool.launcher import Launcher

    pool = load_pool(pool_ref)
    launcher = Launcher(pool, state_dir())
    endpoints, started = bring_up(lambda progress: launcher.up(progress=progress), pool.name, quiet=quiet)
    try:
        with _progress() as progress:
            task = progress.add_task(f"{strategy} on {pool.name}", total=len(data), acc="-")
            done: list[dict[str, Any]] = []

            def on_row(rec: dict[str, Any]) -> None:
                done.append(rec)
                progress.update(task, advance=1, acc=f"{sum(r['correct'] for r in done) / len(done):.0%}")

            return asyncio.run(evaluate(pool, endpoints, strategy, data, params, max_samples=max_samples,
                                        deadline_s=deadline, on_row=on_row))
    finally:
        if not keep and started:
            launcher.down(started)


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
