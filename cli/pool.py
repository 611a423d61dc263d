"""`junto pool up | down | status` (`junto models ...` lives in junto.cli.models; re-exported here)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.table import Table

from junto.cli.common import console, err_console, handle_errors
from junto.cli.models import models_app

__all__ = ["bring_up", "models_app", "pool_app"]  # models_app: junto.cli.main imports it from here

pool_app = typer.Typer(help="Start, stop and inspect a pool's local model servers.", no_args_is_help=True)

PoolOpt = Annotated[Optional[str], typer.Option("--pool", "-p", help="pool YAML file or built-in pool name [default: embedded]")]


def _launcher(pool_ref: str | None):
    from junto.pool.config import load_pool
    from junto.pool.launcher import Launcher

    return Launcher(load_pool(pool_ref))


def bring_up(up, pool_name: str, quiet: bool = False):
    """Call ``up(progress)`` (a Launcher's or Junto's) behind a spinner that shows each step."""
    if quiet:
        return up(None)
    with err_console.status(f"starting pool {pool_name!r}…") as status:
        def progress(msg: str) -> None:
            status.update(msg)
            if "ready at" in msg or "downloading" in msg:
                err_console.print(f"[dim]{msg}[/]")

        return up(progress)


@pool_app.command("up")
@handle_errors
def up(pool: PoolOpt = None) -> None:
    """Start every local server of the pool (pulls the embedded model on first use)."""
    launcher = _launcher(pool)
    endpoints, started = bring_up(lambda progress: launcher.up(progress=progress), launcher.pool.name)
    for name, url in endpoints.items():
        mark = "started" if name in started else "running"
        console.print(f"{name}: {mark} at {url}")


@pool_app.command("down")
@handle_errors
def down(pool: PoolOpt = None) -> None:
    """Stop every server junto started for the pool; leaves no process behind."""
    launcher = _launcher(pool)
    stopped = launcher.down(progress=lambda m: err_console.print(f"[dim]{m}[/]"))
    console.print(f"stopped {len(stopped)} server(s)" + (f": {', '.join(stopped)}" if stopped else ""))


@pool_app.command("status")
@handle_errors
def status(pool: PoolOpt = None, as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """Show each deployment: running, stopped, external, unreachable or dead."""
    launcher = _launcher(pool)
    rows = launcher.status()
    if as_json:
        from junto.pool.capabilities import capabilities

        deps = {d.name: d for d in launcher.pool.deployments}
        console.print_json(json.dumps([{**r.__dict__, "capabilities": sorted(capabilities(deps[r.deployment]))}
                                       if r.deployment in deps else r.__dict__ for r in rows]))
        return
    table = Table(title=f"pool {launcher.pool.name}")
    for col in ("deployment", "backend", "state", "url", "pid", "probe ms", "detail"):
        table.add_column(col)
    colors = {"running": "green", "external": "green", "stopped": "dim", "dead": "red", "unreachable": "red"}
    for r in rows:
        table.add_row(r.deployment, r.backend, f"[{colors.get(r.state, 'white')}]{r.state}[/]", r.url or "",
                      str(r.pid or ""), f"{r.latency_ms:.1f}" if r.latency_ms is not None else "", r.detail)
    console.print(table)
