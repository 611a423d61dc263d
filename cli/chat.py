"""`junto chat`: one question, or an interactive session, against a pool.

The first call brings the pool's local servers up (and pulls the embedded model if needed) and
leaves them running for the next call; ``--no-keep`` stops what this call started.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Optional

import typer

from junto.cli.common import console, err_console, handle_errors
from junto.cli.pool import PoolOpt, bring_up
from junto.errors import ConfigError


async def _stream_answer(client, deployment: str, messages: list[dict[str, Any]], params: dict[str, Any],
                         show: bool) -> tuple[str, Any]:
    from junto.pool.types import StreamDelta

    parts: list[str] = []
    end = None
    async for ev in client.stream(deployment, messages, **params):
        if isinstance(ev, StreamDelta):
            parts.append(ev.text)
            if show:
                console.out(ev.text, end="", highlight=False)
        else:
            end = ev
    if show:
        console.out("")
    return "".join(parts), end


def _footer(end) -> str:
    tokens = end.usage.completion_tokens
    rate = tokens / end.latency_s if end.latency_s > 0 else 0.0
    ttft = f", first token {end.ttft_s * 1000:.0f} ms" if end.ttft_s is not None else ""
    approx = "~" if end.usage.estimated else ""
    cost = f" · ${end.cost_usd:.6f}" if end.cost_usd else ""
    return (f"── {end.deployment} · {approx}{tokens} tokens ({end.usage.prompt_tokens} in) · "
            f"{end.latency_s:.2f} s{ttft} · {rate:.1f} tok/s{cost}")


def _as_json(question: str, answer: str, end) -> dict[str, Any]:
    return {
        "question": question,
        "answer": answer,
        "deployment": end.deployment,
        "model": end.model,
        "finish_reason": end.finish_reason,
        "usage": {"prompt_tokens": end.usage.prompt_tokens, "completion_tokens": end.usage.completion_tokens,
                  "total_tokens": end.usage.total_tokens, "estimated": end.usage.estimated},
        "cost_usd": end.cost_usd,
        "latency_s": round(end.latency_s, 4),
        "ttft_s": round(end.ttft_s, 4) if end.ttft_s is not None else None,
    }


def chat(
    question: Annotated[Optional[str], typer.Argument(help="ask once and exit; omit for an interactive session")] = None,
    pool: PoolOpt = None,
    deployment: Annotated[Optional[str], typer.Option("--deployment", "-d", help="answer with this deployment")] = None,
    system: Annotated[Optional[str], typer.Option(help="system prompt")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="most tokens to generate")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.2,
    seed: Annotated[Optional[int], typer.Option(help="sampling seed")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of streaming text")] = False,
    keep: Annotated[bool, typer.Option("--keep/--no-keep", help="leave the pool's servers running afterwards")] = True,
) -> None:
    """Chat with a pool: `junto chat "question"` answers once; `junto chat` opens a session."""
    handle_errors(_chat)(question, pool, deployment, system, max_tokens, temperature, seed, as_json, keep)


def _chat(question, pool_ref, deployment, system, max_tokens, temperature, seed, as_json, keep) -> None:
    from junto.pool.config import load_pool
    from junto.pool.launcher import Launcher

    pool = load_pool(pool_ref)
    dep = pool.deployment(deployment) if deployment else pool.default_deployment
    if question is None and as_json:
        raise ConfigError("--json needs a question", hint='junto chat --json "your question"')
    launcher = Launcher(pool)
    _endpoints, started = bring_up(launcher, quiet=as_json)
    params = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    try:
        if question is not None:
            messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
            answer, end = asyncio.run(_once(pool, launcher, dep.name, messages, params, show=not as_json))
            if as_json:
                typer.echo(json.dumps(_as_json(question, answer, end)))
            else:
                err_console.print(f"[dim]{_footer(end)}[/]", highlight=False)
        else:
            asyncio.run(_session(pool, launcher, dep.name, system, params))
    finally:
        if not keep and started:
            launcher.down(started)


async def _once(pool, launcher, deployment, messages, params, show):
    from junto.pool.client import PoolClient

    async with PoolClient(pool, launcher.endpoints()) as client:
        return await _stream_answer(client, deployment, messages, params, show)


async def _session(pool, launcher, deployment, system, params) -> None:
    from junto.pool.client import PoolClient

    history: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    err_console.print(f"[dim]chatting with {deployment} (pool {pool.name}); /exit or Ctrl-D to leave, "
                      f"Ctrl-C stops an answer[/]")
    loop = asyncio.get_running_loop()
    async with PoolClient(pool, launcher.endpoints()) as client:
        while True:
            try:
                line = await loop.run_in_executor(None, _prompt)
            except (EOFError, KeyboardInterrupt):
                err_console.print("")
                return
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                return
            history.append({"role": "user", "content": text})
            task = asyncio.ensure_future(_stream_answer(client, deployment, history, params, show=True))
            try:
                answer, end = await task
            except (KeyboardInterrupt, asyncio.CancelledError):
                task.cancel()
                history.pop()
                err_console.print("\n[dim]answer stopped[/]")
                continue
            history.append({"role": "assistant", "content": answer})
            err_console.print(f"[dim]{_footer(end)}[/]", highlight=False)


def _prompt() -> str:
    return console.input("[bold cyan]you>[/] ")
