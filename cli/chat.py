"""`junto chat`: one question, or an interactive session, against a pool — a thin client of ``Junto``.

The first call brings the pool's local servers up (and pulls the embedded model if needed) and
leaves them running for the next call; ``--no-keep`` stops what this call started.
A thinking model's reasoning is shown dimmed on stderr (``--hide-thinking`` leaves it out); stdout
carries the answer alone.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Optional

import typer

from junto.cli.common import console, err_console, handle_errors, parse_params
from junto.cli.pool import PoolOpt, bring_up
from junto.errors import ConfigError


def footer(result) -> str:
    usage = result.usage
    tokens = usage.completion_tokens
    rate = tokens / result.latency_s if result.latency_s > 0 else 0.0
    ttft = f", first token {result.ttft_s * 1000:.0f} ms" if result.ttft_s is not None else ""
    approx = "~" if usage.estimated else ""
    if usage.reasoning_tokens is not None:
        r_approx = "~" if usage.estimated or usage.reasoning_estimated else ""
        thinking = f", {r_approx}{usage.reasoning_tokens} thinking"
    else:
        thinking = ""
    cost = f" · ${result.cost_usd:.6f}" if result.cost_usd else ""
    who = result.deployment if len(result.deployments) <= 1 else ", ".join(result.deployments)
    strat = "" if result.strategy == "direct" else f" · {result.strategy}, {result.samples} samples"
    if result.routing.router not in ("pool-order", "explicit"):
        arm = f" to arm {result.routing.arm}" if result.routing.arm else ""
        strat += f" · routed{arm} by {result.routing.router} in {result.routing.routing_ms:.1f} ms"
    return (f"── {who}{strat} · {approx}{tokens} tokens ({approx}{usage.prompt_tokens} in{thinking}) · "
            f"{result.latency_s:.2f} s{ttft} · {rate:.1f} tok/s{cost}")


def render_event(data: dict[str, Any]) -> str | None:
    """One line for a strategy progress event (model call, sample, tally, decision)."""
    kind = data.get("type", "")
    if kind == "tally":
        votes = data.get("votes") or {}
        top = sorted(votes.items(), key=lambda kv: -kv[1])[:5]
        shown = "  ".join(f"{k!s:.24}: {v:g}" for k, v in top)
        who = f"{data['deployment']}: " if data.get("deployment") else ""
        return f"tally {who}after {data.get('samples', '?')} samples · {shown}"
    if kind == "sample":
        cut = " (cut by max_tokens: no vote)" if data.get("truncated") and data.get("answer") is None else ""
        return f"sample {data.get('index', '?')} from {data.get('deployment', '?')}: {data.get('answer')!r}{cut}"
    if kind == "model_call":
        return f"calling {data.get('deployment', '?')} for {data.get('n', 1)} sample(s)"
    if kind == "decision":
        return f"decision: {data.get('answer')!r} ({data.get('reason', '')})"
    if kind == "stop":
        if data.get("samples_saved"):
            return (f"stopped early after {data.get('samples')} samples ({data.get('reason')}; "
                    f"saved {data.get('samples_saved')})")
        return f"stopped after {data.get('samples')} samples ({data.get('reason')})"
    if kind == "fallback":
        to = f", trying {data['to']}" if data.get("to") else ""
        return f"fallback: {data.get('deployment')} failed ({data.get('error')}){to}"
    if kind == "error":
        return f"error from {data.get('deployment')} ({data.get('kind')}): {data.get('error')}"
    if kind == "ets_step":
        return render_ets_step(data)
    if kind.startswith("xolver_"):
        return render_xolver_event(data)
    return render_thinking_event(data)


def render_xolver_event(data: dict[str, Any]) -> str | None:
    """Lines for the xolver strategy's events: roles, memory hits, rounds, each agent's verdict, stop, write-back."""
    kind = data.get("type", "")
    if kind == "xolver_roles":
        team = ", ".join(f"{r['name']} ({r['deployment']})" for r in data.get("roles") or [])
        tests = f", {data['examples']} example tests" if data.get("examples") is not None else ""
        line = f"xolver team by {data.get('planner')}: {team} · judge: {data.get('judge')}{tests}"
        return line + (f" · {data['fallback']}" if data.get("fallback") else "")
    if kind == "xolver_memory":
        hits = data.get("hits") or []
        if not data.get("searched"):
            return f"memory: not searched ({data.get('reason')})"
        if not hits:
            return "memory: no similar solved problem"
        return "memory: " + " | ".join(f"{h['fused']:.3f} {h['problem']!r}" for h in hits)
    if kind == "xolver_round":
        return f"round {data.get('round')}/{data.get('rounds')}: {data.get('agents')} agents answering"
    if kind == "xolver_agent":
        score = data.get("score")
        tests = f" ({data['passed']}/{data['tests']} examples)" if data.get("tests") is not None else ""
        verdict = "verified" if data.get("verified") else "not verified"
        note = f" · {data['note']}" if data.get("note") else ""
        return (f"  agent {data.get('agent')} {data.get('role')}: score {score:.2f}{tests}, {verdict}, "
                f"{data.get('tokens')} tokens · {data.get('answer')!r:.80}{note}")
    if kind == "xolver_judge":
        return (f"judge ({data.get('judge')}) round {data.get('round')}: best {data.get('best_role')} "
                f"{data.get('best_score') or 0:.2f}{' — verified' if data.get('verified') else ''}")
    if kind == "xolver_stop":
        return f"stopped early after round {data.get('round')}: verified ({data.get('rounds_saved')} round(s) saved)"
    if kind == "xolver_memory_write":
        if data.get("wrote"):
            return f"memory: wrote the verified answer of {data.get('role')} (score {data.get('score'):.2f})"
        return f"memory: nothing written ({data.get('reason')})"
    return None


def render_ets_step(data: dict[str, Any]) -> str:
    """One line per tree depth of the ets / rebase search: nodes, kept, pruned, KV retained, cache hits."""
    line = (f"{data.get('strategy')} depth {data.get('depth')}: {data.get('nodes')} new steps, "
            f"{data.get('finished')} finished, kept {data.get('kept')}, pruned {data.get('pruned')} · "
            f"KV {data.get('kv_tokens')} tokens retained")
    if data.get("kv_tokens_rebase") is not None:
        line += f" (REBASE would keep {data['kv_tokens_rebase']})"
    if data.get("cached_tokens") is not None:
        line += f" · server cache {data['cached_tokens']}/{data.get('prompt_tokens')} prompt tokens"
    return line


def render_thinking_event(data: dict[str, Any]) -> str | None:
    """Lines for the thinking strategies' events (thoughtmani, trimr)."""
    kind = data.get("type", "")
    if kind == "roles":
        parts = [f"{role} {data[role]}" for role in ("planner", "reasoner", "verifier") if data.get(role)]
        if data.get("strategy") == "trimr" and not data.get("monitor", True):
            parts.append("monitoring off (plain thinking)")
        return "roles: " + ", ".join(parts)
    if kind == "plan":
        if data.get("stop"):
            return f"plan by {data.get('planner')}: <STOP> — the reasoner thinks by itself"
        plan = " ".join(str(data.get("plan") or "").split())
        return f"plan by {data.get('planner')} ({data.get('tokens')} tokens): {plan[:300]}"
    if kind == "thought":
        ans = f"answer {data['answer']!r}" if data.get("answer") is not None else "no answer"
        by = f", verifier P(yes)={data['p_yes']:.2f}" if data.get("p_yes") is not None else ""
        streak = f", {data['streak']} in a row" if (data.get("streak") or 0) > 1 else ""
        return f"thought {data.get('index')} at {data.get('tokens')} tokens: {ans}{by}{streak}"
    if kind == "trim":
        return (f"trimr: {data.get('decision')} at thought {data.get('thought')} after {data.get('tokens')} "
                f"thinking tokens — closing the thinking")
    return None


async def answer_once(junto, messages, strategy, params, show: bool, show_thinking: bool = True):
    """Stream one answer. The model's thinking (``reasoning_content``) goes to stderr, dimmed, unless
    ``show_thinking`` is off; stdout carries the reply only (an extracted answer, when it differs, goes to stderr)."""
    from junto.facade import ResultEvent, StrategyEvent, TokenEvent

    result = None
    streamed = False
    thinking = False  # a thinking line is open on stderr
    thought = False   # some thinking was streamed
    async for ev in junto.astream(messages, strategy=strategy, **params):
        if isinstance(ev, TokenEvent) and ev.kind == "reasoning":
            if show and show_thinking:
                if not thinking:
                    err_console.out("thinking: ", style="dim", end="", highlight=False)
                    thinking = thought = True
                err_console.out(ev.text, style="dim", end="", highlight=False)
        elif isinstance(ev, TokenEvent):
            streamed = True
            if thinking:
                err_console.out("")
                thinking = False
            if show:
                console.out(ev.text, end="", highlight=False)
        elif isinstance(ev, StrategyEvent) and show:
            line = render_event(ev.data)
            if line:
                if thinking:  # an event line never lands inside the open thinking line: break it first
                    err_console.out("")
                    thinking = False
                err_console.print(f"[dim]{line}[/]", highlight=False)
        elif isinstance(ev, ResultEvent):
            result = ev.result
    if thinking:
        err_console.out("")
    if show:
        if not streamed:
            if show_thinking and result.reasoning_content and not thought:
                err_console.out(f"thinking: {result.reasoning_content}", style="dim", highlight=False)
            # the whole reply; a strategy's extracted answer, when it is something else, follows on stderr
            console.out(result.text or result.answer, end="", highlight=False)
        console.out("")
        if result.extra.get("thinking_truncated"):
            err_console.print("[dim]the thinking was cut by max tokens before its close tag: no answer "
                              "(raise --max-tokens)[/]", highlight=False)
        if result.votes:
            err_console.print(f"[bold]answer:[/] {result.answer}  [dim]votes: "
                              + ", ".join(f"{k}: {v:g}" for k, v in sorted(result.votes.items(), key=lambda kv: -kv[1]))
                              + "[/]", highlight=False)
        elif result.answer and "\n" not in result.answer and result.answer.strip() != (result.text or "").strip():
            err_console.print(f"[bold]answer:[/] {result.answer}", highlight=False)
    return result


def chat(
    question: Annotated[Optional[str], typer.Argument(help="ask once and exit; omit for an interactive session")] = None,
    pool: PoolOpt = None,
    deployment: Annotated[Optional[str], typer.Option("--deployment", "-d", help="answer with this deployment (no routing)")] = None,
    strategy: Annotated[Optional[str], typer.Option(
        "--strategy", "-s", help="auto (the router picks the arm), direct, sc, modelswitch, ... [default: the config's]")] = None,
    samples: Annotated[Optional[int], typer.Option(min=1, help="samples for voting strategies")] = None,
    param: Annotated[list[str], typer.Option("--param", help="strategy parameter key=value (repeatable)")] = [],  # noqa: B006
    system: Annotated[Optional[str], typer.Option(help="system prompt")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="most tokens to generate")] = 256,
    temperature: Annotated[Optional[float], typer.Option(min=0.0, max=2.0, help="sampling temperature")] = None,
    seed: Annotated[Optional[int], typer.Option(help="sampling seed")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of streaming text")] = False,
    keep: Annotated[bool, typer.Option("--keep/--no-keep", help="leave the pool's servers running afterwards")] = True,
    show_thinking: Annotated[bool, typer.Option(
        "--show-thinking/--hide-thinking",
        help="show a thinking model's reasoning (dimmed, on stderr; the answer alone goes to stdout)")] = True,
) -> None:
    """Chat with a pool: `junto chat "question"` answers once; `junto chat` opens a session."""
    handle_errors(_chat)(question, pool, deployment, strategy, samples, param, system, max_tokens, temperature, seed,
                         as_json, keep, show_thinking)


def _chat(question, pool_ref, deployment, strategy, samples, param, system, max_tokens, temperature, seed, as_json,
          keep, show_thinking=True) -> None:
    from junto.facade import Junto

    junto = Junto.from_config(pool_ref, keep=keep)
    if deployment:
        junto.pool.deployment(deployment)
    if question is None and as_json:
        raise ConfigError("--json needs a question", hint='junto chat --json "your question"')
    strategy = strategy or junto.config.strategy
    params: dict[str, Any] = {"max_tokens": max_tokens, **parse_params(param)}
    if temperature is not None:
        params["temperature"] = temperature
    else:  # a calm default for single answers, under the config's own and any arm's parameters
        junto.config.strategies.setdefault("direct", {}).setdefault("temperature", 0.2)
    if seed is not None:
        params["seed"] = seed
    if samples is not None:
        params["samples"] = samples
    junto.prepare(strategy, params)  # the request contract: a bad option fails here, before any server starts
    if deployment:
        params["deployment"] = deployment
    bring_up(junto.up, junto.pool.name, quiet=as_json)
    try:
        if question is not None:
            result = asyncio.run(_once(junto, question, system, strategy, params, show=not as_json,
                                       show_thinking=show_thinking))
            if as_json:
                typer.echo(json.dumps({"question": question, **result.to_dict()}))
            else:
                err_console.print(f"[dim]{footer(result)}[/]", highlight=False)
        else:
            asyncio.run(_session(junto, system, strategy, params, show_thinking))
    finally:
        if not keep:
            junto.stop_started()


async def _once(junto, question, system, strategy, params, show, show_thinking=True):
    from junto.facade import as_messages

    junto.keep = True  # the CLI stops servers itself once the event loop is gone
    async with junto:
        return await answer_once(junto, as_messages(question, system), strategy, params, show, show_thinking)


async def _session(junto, system, strategy, params, show_thinking=True) -> None:
    history: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    target = params.get("deployment") or junto.pool.default_deployment.name
    err_console.print(f"[dim]chatting with pool {junto.pool.name} ({target}, strategy {strategy}); "
                      f"/exit or Ctrl-D to leave, Ctrl-C stops an answer[/]")
    loop = asyncio.get_running_loop()
    junto.keep = True
    async with junto:
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
            task = asyncio.ensure_future(answer_once(junto, list(history), strategy, params, show=True,
                                                     show_thinking=show_thinking))
            try:
                result = await task
            except (KeyboardInterrupt, asyncio.CancelledError):
                task.cancel()
                history.pop()
                err_console.print("\n[dim]answer stopped[/]")
                continue
            history.append({"role": "assistant", "content": result.text})
            err_console.print(f"[dim]{footer(result)}[/]", highlight=False)


def _prompt() -> str:
    return console.input("[bold cyan]you>[/] ")
