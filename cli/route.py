"""`junto route fit | eval | explain | calibrate`: build, judge and inspect routers."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from junto.cli.common import console, err_console, handle_errors
from junto.errors import ConfigError

route_app = typer.Typer(help="Fit, evaluate and explain routers; calibrate a pool on a labelled dataset.",
                        no_args_is_help=True)

METHOD_HELP = "avengers | avengers-pro | knn | mlp | svm"


def _quiet_libraries() -> None:
    # model loading chatter (weights reports, tqdm bars) would drown the CLI's own output
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err_console, transient=False)


def _embed_progress(progress: Progress, label: str):
    task = progress.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return update


@route_app.command("fit")
@handle_errors
def fit(
    records: Annotated[Path, typer.Option("--records", help="JSON list or JSONL of {question, scores}")],
    method: Annotated[str, typer.Option("--method", help=METHOD_HELP)],
    out: Annotated[Path, typer.Option("--out", help="router artifact directory to write")],
    costs: Annotated[Optional[Path], typer.Option("--costs", help="JSON {model: cost per query}; default: the "
                                                   "records' mean realized cost, else equal")] = None,
    embedder: Annotated[str, typer.Option(help="minilm | static | st:<model folder> | m2v:<folder>")] = "minilm",
    clusters: Annotated[Optional[int], typer.Option("--clusters", "-k", help="K-means clusters (avengers*)")] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="nearest clusters that vote (avengers*)")] = None,
    beta: Annotated[Optional[float], typer.Option("--beta", help="softmax sharpness (avengers*)")] = None,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="performance weight (avengers-pro, knn/mlp/svm)")] = None,
    cost_weight: Annotated[Optional[float], typer.Option("--cost-weight", help="β of the FusionFactory reward")] = None,
    preset: Annotated[Optional[str], typer.Option(help="performance | balance | cost (knn/mlp/svm)")] = None,
    neighbors: Annotated[Optional[int], typer.Option(help="neighbours (knn)")] = None,
    cost_source: Annotated[Optional[str], typer.Option("--cost-source", help="auto | realized | table (avengers-pro): "
                                                       "per-cluster realized cost from the records' usage, or the "
                                                       "--costs table; auto: realized when the records carry it")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON summary")] = False,
) -> None:
    """Fit a router on routing records and write a versioned artifact directory (atomically)."""
    _quiet_libraries()
    from junto.routers.base import load_costs, load_records, router_class
    from junto.routers.fit import fit_router

    cls = router_class(method)
    recs = load_records(records)
    # without a costs file, records that carry realized costs (calibrate writes them) set each model's cost
    cost_map = (load_costs(costs, recs.models) if costs is not None
                else recs.mean_realized_costs() or load_costs(None, recs.models))
    opts = {k: v for k, v in {"n_clusters": clusters, "top_k": top_k, "beta": beta, "alpha": alpha,
                              "preset": preset, "n_neighbors": neighbors, "seed": seed,
                              "cost_source": cost_source}.items() if v is not None}
    fusion = method in ("knn", "mlp", "svm")
    names = {"n_clusters": "--clusters", "top_k": "--top-k", "beta": "--beta", "alpha": "--alpha",
             "preset": "--preset", "n_neighbors": "--neighbors", "seed": "--seed", "cost_source": "--cost-source"}
    # --beta is the Avengers softmax sharpness; FusionFactory's cost weight β is --cost-weight
    bad = [names[k] for k in opts if k not in cls.Config.model_fields or (fusion and k == "beta")]
    if cost_weight is not None:
        if fusion:
            opts["beta"] = cost_weight
        else:
            bad.append("--cost-weight")
    if bad:
        raise ConfigError(f"method {method!r} takes no {', '.join(bad)}",
                          hint="avengers/avengers-pro: --clusters --top-k --beta --seed (avengers-pro also --alpha "
                               "--cost-source); "
                               "knn/mlp/svm: --preset --alpha --cost-weight --seed (knn also --neighbors)")
    with _progress() as progress:
        upd = _embed_progress(progress, f"embedding {len(recs)} questions")
        router = fit_router(recs, method, costs=cost_map, embedder=embedder, options=opts, progress=upd,
                            status=lambda m: err_console.print(f"[dim]{m}[/]"))
    path = router.save(out)
    summary = {"out": str(path), "method": method, "models": router.models, "records": len(recs),
               "data_hash": router.meta["data"]["hash"], "best_single": router.best_single,
               "embedder": router.embedder_spec, "config": router.meta["config"]}
    if "cost_source" in router.meta:
        summary["cost_source"] = router.meta["cost_source"]
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        console.print(f"wrote {method} router for {len(router.models)} models, fit on {len(recs)} records → {path}")
        console.print(f"best single model on these records: {router.best_single}")
        if router.meta.get("cost_source") == "realized":
            console.print("clusters rank models by the records' realized cost per cluster")


@route_app.command("eval")
@handle_errors
def evaluate(
    router: Annotated[Path, typer.Option("--router", help="router artifact directory")],
    records: Annotated[Path, typer.Option("--records", help="held-out records (JSON list or JSONL)")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Score the router's choices on records it never saw, beside random, best single and oracle."""
    _quiet_libraries()
    from junto.routers.base import load_records, load_router
    from junto.routers.fit import evaluate_router

    r = load_router(router)
    recs = load_records(records)
    with _progress() as progress:
        upd = _embed_progress(progress, f"embedding {len(recs)} questions")
        res = evaluate_router(r, recs, progress=upd)
    if as_json:
        keys = ("accuracy", "avg_cost", "random", "best_single", "oracle", "gap_closed", "n")
        typer.echo(json.dumps({k: res[k] for k in keys}))
        return
    table = Table(title=f"{r.meta['method']} router on {res['n']} records")
    for col in ("", "accuracy", "avg cost"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row("router", f"{res['accuracy']:.4f}", f"{res['avg_cost']:.3f}")
    table.add_row("random", f"{res['random']:.4f}", f"{res['random_cost']:.3f}")
    table.add_row(f"best single ({res['best_single_model']})", f"{res['best_single']:.4f}", f"{res['best_single_cost']:.3f}")
    table.add_row("oracle", f"{res['oracle']:.4f}", f"{res['oracle_cost']:.3f}")
    console.print(table)
    gap = res["gap_closed"]
    console.print(f"gap closed: {'n/a (the oracle is no better than the best single model)' if gap is None else f'{gap:.3f}'}")
    console.print("choices: " + ", ".join(f"{m} {c}" for m, c in sorted(res["choices"].items(), key=lambda x: -x[1])))


@route_app.command("explain")
@handle_errors
def explain(
    query: Annotated[str, typer.Argument(help="the query to route")],
    router: Annotated[Path, typer.Option("--router", help="router artifact directory")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Show how the router decides on one query: nearest clusters, per-model scores, the choice."""
    _quiet_libraries()
    from junto.routers.base import load_router

    r = load_router(router)
    d = r.route(query)
    if as_json:
        typer.echo(json.dumps({"chosen": d.chosen, "ranked": d.ranked, "latency_ms": d.latency_ms,
                               "details": d.details, "method": r.meta["method"]}))
        return
    console.print(f"[bold]{r.meta['method']}[/] router · embedder {r.embedder_spec} · {d.latency_ms:.2f} ms")
    clusters = d.details.get("clusters")
    if clusters:
        t = Table(title="nearest clusters")
        for col in ("cluster", "cosine distance", "weight", "best models there"):
            t.add_column(col)
        for c in clusters:
            prof = r.cluster_profile(c["cluster"])
            ranks = r.ranks[c["cluster"]] if hasattr(r, "ranks") else None
            order = (sorted(prof, key=lambda m: int(ranks[r.models.index(m)])) if ranks is not None
                     else sorted(prof, key=lambda m: -prof[m]))
            top = ", ".join(f"{m} {prof[m]:.2f}" for m in order[:3])
            t.add_row(str(c["cluster"]), f"{c['distance']:.4f}", f"{c['weight']:.3f}", top)
        console.print(t)
    elif d.details:
        console.print(", ".join(f"{k}: {v}" for k, v in d.details.items()))
    t = Table(title="model scores")
    t.add_column("model")
    t.add_column("score", justify="right")
    t.add_column("cost", justify="right")
    for m, s in d.ranked:
        t.add_row(m, f"{s:.4f}", f"{r.costs[m]:g}")
    console.print(t)
    console.print(f"chosen: [bold green]{d.chosen}[/]")


@route_app.command("calibrate")
@handle_errors
def calibrate(
    dataset: Annotated[Path, typer.Option("--dataset", help="JSONL of {question, answer, metric[, choices]}")],
    pool: Annotated[Optional[str], typer.Option("--pool", "-p", help="pool YAML or built-in name [default: embedded]")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="records file to write [default: <dataset>.records.jsonl]")] = None,
    arms: Annotated[Optional[str], typer.Option(
        "--arms", "--deployments", help="comma-separated arms (a pool without arms: its deployments) [default: all]")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="most tokens per model call")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0, help="for direct arms")] = 0.0,
    limit: Annotated[Optional[int], typer.Option(min=1, help="only the first N items")] = None,
    keep: Annotated[bool, typer.Option("--keep/--no-keep", help="leave the pool's servers running afterwards")] = True,
) -> None:
    """Run each arm (deployment × strategy × parameters) over a labelled dataset through the facade, grade the
    answers, write routing records keyed by arm (resumable)."""
    from junto.facade import Junto
    from junto.routers.calibrate import load_dataset, progress_path

    items = load_dataset(dataset)
    if limit:
        items = items[:limit]
    junto = Junto.from_config(pool, keep=keep)
    names = [a.name for a in junto.pool.arm_list()]
    if arms:
        names = [n.strip() for n in arms.split(",") if n.strip()]
        for n in names:
            junto.pool.arm(n)  # raises a ConfigError naming the choices
    out = out or dataset.with_name(dataset.stem + ".records.jsonl")
    with err_console.status(f"starting pool {junto.pool.name!r}…") as spinner:
        junto.up(progress=lambda msg: spinner.update(msg))
    try:
        summary = asyncio.run(_calibrate(junto, names, items, out, max_tokens, temperature))
    finally:
        if not keep:
            junto.stop_started()
    if summary["resumed"]:
        err_console.print(f"[dim]resumed: {summary['resumed']} graded answer(s) reused from {progress_path(out)}[/]")
    t = Table(title=f"calibration on {summary['records']} items")
    t.add_column("arm")
    t.add_column("mean score", justify="right")
    t.add_column("mean completion tokens", justify="right")
    t.add_column("mean latency (s)", justify="right")
    t.add_column("mean cost (USD)", justify="right")
    for d, s in summary["mean_score"].items():
        toks = summary.get("mean_completion_tokens", {}).get(d)
        lat = summary.get("mean_latency_s", {}).get(d)
        cost = summary.get("mean_cost", {}).get(d)
        t.add_row(d, f"{s:.3f}", "–" if toks is None else f"{toks:.0f}", "–" if lat is None else f"{lat:.2f}",
                  "–" if cost is None else f"{cost:.6f}")
    console.print(t)
    console.print(f"wrote {summary['records']} records → {summary['out']} "
                  f"({summary['graded_now']} answers graded now, {summary['resumed']} reused)")
    if summary["failed"]:
        err_console.print(f"[yellow]{len(summary['failed'])} answer(s) failed and were not graded; rerun the same "
                          f"command to retry them (records hold only items every arm graded)[/]")
        raise typer.Exit(1)


async def _calibrate(junto, names, items, out, max_tokens, temperature):
    from junto.routers.calibrate import calibrate as run
    from junto.routers.calibrate import facade_answer

    with _progress() as progress:
        task = progress.add_task("calibrating", total=len(items) * len(names))

        def on_result(item, dep, score, resumed):
            progress.advance(task)

        def on_error(item, arm, exc):
            progress.advance(task)
            err_console.print(f"[yellow]not graded: item {item.id} by {arm}: {exc.message}[/] (a rerun retries it)",
                              highlight=False)

        junto.keep = True  # the servers are stopped (or kept) by the caller, after the event loop is gone
        async with junto:
            return await run(facade_answer(junto, max_tokens=max_tokens, temperature=temperature), names, items,
                             Path(out), on_result=on_result, on_error=on_error)


@route_app.command("dataset")
@handle_errors
def dataset(
    source: Annotated[Path, typer.Option("--from", help="the shared routing queries (queries_train.jsonl), GSM8K's "
                                         "train.jsonl or HumanEval.jsonl.gz")],
    out: Annotated[Path, typer.Option("--out", help="calibration JSONL to write")],
    per_task: Annotated[str, typer.Option("--per-task", help="items per task (a positive number), or 'all'")] = "20",
    seed: Annotated[int, typer.Option("--seed", help="sampling seed (each task draws with its own generator)")] = 0,
    tasks: Annotated[Optional[str], typer.Option("--tasks", help="comma-separated tasks [default: all]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as one JSON object")] = False,
) -> None:
    """Make a calibration set from shared data: every task's rows become graded items (mc, numeric, math, f1,
    code, coverage), N per task, stratified and deterministic; rows whose reference cannot be parsed are skipped
    and counted."""
    from junto.paths import atomic_write_text
    from junto.routers.tasks import build_dataset, dumps_items, parse_per_task

    n = parse_per_task(per_task)
    wanted = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    items, summary = build_dataset(source, per_task=n, seed=seed, tasks=wanted)
    if not items:
        raise ConfigError(f"{source}: no valid items", hint="see the skipped reasons with --json")
    atomic_write_text(out, dumps_items(items))
    summary["out"] = str(out)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    t = Table(title=f"{summary['items']} items from {source} (per task {summary['per_task']}, seed {seed})")
    for col in ("task", "rows", "valid", "selected", "skipped"):
        t.add_column(col, justify="left" if col in ("task", "skipped") else "right")
    for task, s in summary["tasks"].items():
        why = ", ".join(f"{k}: {v}" for k, v in s["skipped"].items()) or "–"
        t.add_row(task, str(s["rows"]), str(s["valid"]), str(s["selected"]), why)
    console.print(t)
    console.print(f"wrote {summary['items']} items → {out} ({summary['skipped']} rows skipped)")
