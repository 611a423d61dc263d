"""The `junto` command: a thin typer front over the pool layer, routers and strategies."""

from __future__ import annotations

import os

import typer

from junto import __version__
from junto.cli.chat import chat
from junto.cli.pool import models_app, pool_app

app = typer.Typer(
    name="junto",
    help="Route queries across pools of small local models and reason over them at test time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("chat")(chat)
app.add_typer(pool_app, name="pool")
app.add_typer(models_app, name="models")


def _register_optional() -> None:
    """Subcommands contributed by other packages of junto (routers, reasoning, gateway)."""
    import importlib

    for module, attr, name in (
        ("junto.cli.route", "route_app", "route"),
        ("junto.cli.eval", "eval_app", None),
        ("junto.cli.serve", "serve_app", None),
        ("junto.cli.vllm", "vllm_app", "vllm"),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        obj = getattr(mod, attr)
        if name:
            app.add_typer(obj, name=name)
        else:
            app.registered_commands.extend(obj.registered_commands)


_register_optional()


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"junto {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                       help="print the version and exit")) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def main() -> None:
    app()
