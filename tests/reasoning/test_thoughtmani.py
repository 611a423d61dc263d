"""ThoughtMani and TrimR against the real embedded llama.cpp server (SmolLM2-135M as planner, reasoner and
verifier: the machinery — prefill, plan, events, cuts, exact tokens — not answer quality), plus the pure
parts of ThoughtMani (the plan's reading, role choice, parameters)."""

from __future__ import annotations

import asyncio
import json

import pytest

from junto.errors import ConfigError
from junto.pool.config import parse_pool
from junto.reasoning import RunContext, stream_strategy
from junto.reasoning.registry import validate_params
from junto.reasoning.thoughtmani.plan import PLANNER_PROMPT, parse_plan
from junto.reasoning.trimr import roles
from junto.reasoning.trimr.verifier import verifier_for

Q = [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples does he have?"}]

# -- pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, plan", [
    ("1. Add the apples.\n2. Report the total.\n<STOP>", "1. Add the apples.\n2. Report the total."),
    ("<STOP>", None),
    ("  <STOP> anything after", None),
    ("", None),
    (None, None),
    ("...\n - \n<STOP>", None),
    ("Add them up.", "Add them up."),            # no <STOP> (cut by plan_tokens): the text is the plan
    ("Step A <STOP> Step B <STOP>", "Step A"),
])
def test_parse_plan(text, plan):
    assert parse_plan(text) == plan


def test_plan_is_bounded_and_prompt_asks_for_stop():
    assert len(parse_plan("x" * 100_000)) == 4000
    assert "<STOP>" in PLANNER_PROMPT and "calculation" in PLANNER_PROMPT


def _pool(tags_a=(), tags_b=()):
    return parse_pool({"name": "p", "deployments": [
        {"name": "a", "backend": "openai", "url": "http://127.0.0.1:9/v1", "model": "m", "tags": list(tags_a)},
        {"name": "b", "backend": "openai", "url": "http://127.0.0.1:9/v1", "model": "m", "tags": list(tags_b)}]})


def _ctx(pool, candidates):
    return RunContext(client=None, pool=pool, candidates=candidates)  # roles.pick reads the pool only


def test_roles_named_tagged_ranked():
    pool = _pool()
    ctx = _ctx(pool, ["a", "b"])
    assert roles.pick(ctx, "reasoner", None) == "a"                       # best-ranked
    assert roles.pick(ctx, "planner", None, reasoner="a") == "b"          # last-ranked other
    assert roles.pick(_ctx(pool, ["a"]), "planner", None, reasoner="a") == "a"  # one candidate: itself
    assert roles.pick(ctx, "planner", "a", reasoner="a") == "a"           # named wins
    tagged = _pool(tags_a=["planner"], tags_b=["reasoner"])
    ctx = _ctx(tagged, ["a"])
    assert roles.pick(ctx, "reasoner", None) == "b"                       # tag, even outside the candidates
    assert roles.pick(ctx, "planner", None, reasoner="b") == "a"
    with pytest.raises(ConfigError, match="planner 'zz' is not a deployment") as e:
        roles.pick(ctx, "planner", "zz")
    assert e.value.hint and "a, b" in e.value.hint


def test_local_pool_tags_pick_the_papers_setting():
    from junto.pool.config import load_pool

    pool = load_pool("local")
    ctx = _ctx(pool, [pool.default_deployment.name])
    reasoner = roles.pick(ctx, "reasoner", None)
    assert reasoner == "qwen2.5-coder-1.5b"
    assert roles.pick(ctx, "planner", None, reasoner=reasoner) == "qwen2.5-coder-0.5b"
    assert roles.pick(ctx, "verifier", None, reasoner=reasoner) == "qwen2.5-coder-0.5b"
    assert "<think>" in pool.deployment(reasoner).thinking.prompt


@pytest.mark.parametrize("name, params, field", [
    ("thoughtmani", {"plan_tokens": 0}, "plan_tokens"),
    ("thoughtmani", {"planer": "x"}, "planer"),
    ("trimr", {"consecutive": 1}, "consecutive"),
    ("trimr", {"under_fraction": 0}, "under_fraction"),
    ("trimr", {"thinking_budget": 3}, "thinking_budget"),
])
def test_bad_parameters_are_named(name, params, field):
    with pytest.raises(ConfigError) as e:
        validate_params(name, params)
    assert e.value.param == field


def test_capability_missing_is_a_clear_error():
    """A reasoner that cannot prefill (a llama-cpp-python server) fails before any call, naming it."""
    pool = parse_pool({"name": "p", "deployments": [
        {"name": "old", "backend": "llamacpp", "model": "embedded:smollm2-135m", "launch": {"server": "llama-cpp-python"},
         "capabilities": {"prefill": False}}]})

    async def go():
        ctx = RunContext(client=None, pool=pool, candidates=["old"])
        return [ev async for ev in stream_strategy("thoughtmani", ctx, Q, {})]

    with pytest.raises(ConfigError, match="needs 'prefill' on deployment 'old'"):
        asyncio.run(go())


# -- real server --------------------------------------------------------------------------------

llamacpp = pytest.mark.llamacpp


def ctx_for(client, pool):
    return RunContext(client=client, pool=pool, candidates=[pool.default_deployment.name])


async def collect(name, ctx, params, messages=Q):
    events = [ev async for ev in stream_strategy(name, ctx, messages, params)]
    assert events[-1]["type"] == "result"
    return events, events[-1]["result"]


@llamacpp
async def test_thoughtmani_plans_then_answers_after_the_prefilled_plan(embedded_pool, embedded_client):
    pool, _ = embedded_pool
    events, r = await collect("thoughtmani", ctx_for(embedded_client, pool), {"temperature": 0, "seed": 0})
    types = [e["type"] for e in events]
    assert types[:3] == ["roles", "model_call", "plan"]
    plan = next(e for e in events if e["type"] == "plan")
    assert plan["planner"] == "smollm2-135m" and plan["tokens"] > 0
    assert "decision" in types and types.index("plan") < types.index("decision")
    answer = "".join(e["text"] for e in events if e["type"] == "token" and e.get("kind", "content") == "content")
    assert answer == r.text and r.text.strip()
    x = r.extra
    if plan["stop"]:
        assert x["plan_stop"] and x["ended"] in ("closed", "budget")
    else:
        assert x["plan"] == plan["plan"] == r.reasoning_content and x["ended"] == "planned"
        seg = x["segments"]
        assert len(seg) == 1 and seg[0]["completion_tokens"] == x["answer_tokens"] > 0
    # exact tokens: the planner's call plus the reasoner's segments
    assert r.usage.completion_tokens == x["plan_tokens"] + x["answer_tokens"] + x["thinking_tokens"]
    assert r.usage.reasoning_tokens == x["plan_tokens"] + x["thinking_tokens"]
    assert not r.usage.estimated


@llamacpp
async def test_trimr_cuts_by_underthinking_and_the_baseline_takes_the_same_path(embedded_pool, embedded_client):
    pool, _ = embedded_pool
    ctx = ctx_for(embedded_client, pool)
    q = [{"role": "user", "content": "Explain in detail, step by step, how to compute 17 * 23."}]
    events, r = await collect("trimr", ctx, {"temperature": 0, "seed": 0, "thinking_budget": 48,
                                             "answer_tokens": 16}, q)
    trims = [e for e in events if e["type"] == "trim"]
    assert len(trims) == 1 and trims[0]["decision"] == "underthinking"
    x = r.extra
    assert x["ended"] == "underthinking" and x["monitor"] is True
    think_seg, answer_seg = x["segments"]
    assert think_seg["finish_reason"] == "cut" and answer_seg["completion_tokens"] <= 16
    # cut at 50 % of the budget: a token or two past 24 (the cut lands after the token in hand)
    assert 24 <= x["thinking_tokens"] <= 30
    reasoning = "".join(e["text"] for e in events if e["type"] == "token" and e.get("kind") == "reasoning")
    assert reasoning == r.reasoning_content == x["thinking"]
    assert r.usage.reasoning_tokens == x["thinking_tokens"]
    assert r.usage.completion_tokens == x["thinking_tokens"] + x["answer_tokens"]
    # the answer segment continued the same turn: the server reused the thinking's prompt cache
    assert answer_seg["cached_tokens"] and answer_seg["cached_tokens"] >= think_seg["prompt_tokens"]

    events, base = await collect("trimr", ctx, {"temperature": 0, "seed": 0, "thinking_budget": 48,
                                                "answer_tokens": 16, "monitor": False}, q)
    assert not [e for e in events if e["type"] in ("trim", "thought")]
    assert base.extra["ended"] in ("budget", "closed") and base.extra["monitor"] is False
    # same prompt, same greedy decoding: the baseline's thinking starts with what TrimR cut
    assert base.extra["thinking"].startswith(x["thinking"][:40])
    assert base.extra["thinking_tokens"] > x["thinking_tokens"]


@llamacpp
async def test_trimr_catches_a_real_decoding_loop(embedded_pool, embedded_client):
    """SmolLM2 at temperature 0 loops on this prompt (it repeats the open tag): the rolling hash catches it."""
    pool, _ = embedded_pool
    q = [{"role": "user", "content": "Write the sentence 'I like green apples very much today' twenty times, "
                                     "one per line."}]
    events, r = await collect("trimr", ctx_for(embedded_client, pool),
                              {"temperature": 0, "seed": 0, "thinking_budget": 300, "answer_tokens": 16,
                               "repeat_window": 8}, q)
    trims = [e for e in events if e["type"] == "trim"]
    assert [t["decision"] for t in trims] == ["repetition"]
    assert r.extra["ended"] == "repetition" and r.extra["segments"][0]["finish_reason"] == "cut"
    assert r.extra["thinking_tokens"] < 150  # far short of the budget's underthinking point


@llamacpp
async def test_trimr_with_a_verifier_judges_unsure_thoughts(embedded_pool, embedded_client):
    pool, _ = embedded_pool
    ctx = ctx_for(embedded_client, pool)
    q = [{"role": "user", "content": "Compute 12 * 5. Then write a blank line. Then check it again: Wait, is "
                                     "12 * 5 really 60? Then write a blank line and check once more."}]
    events, r = await collect("trimr", ctx, {"temperature": 0, "seed": 0, "thinking_budget": 200, "answer_tokens": 24,
                                             "verifier": "smollm2-135m"}, q)
    thoughts = [e for e in events if e["type"] == "thought"]
    assert r.extra["verifier"] == "smollm2-135m"
    assert r.extra["verifier_calls"] == sum(1 for t in thoughts if t["by"] == "verifier") >= 1
    for t in thoughts:
        if t["by"] == "verifier":
            assert 0.0 <= t["p_yes"] <= 1.0
    assert r.extra["trace"] == [{k: v for k, v in t.items() if k not in ("type", "strategy")} for t in thoughts]


@llamacpp
async def test_one_verifier_serves_many_concurrent_checks(embedded_pool, embedded_client):
    v = verifier_for(embedded_client, "smollm2-135m")
    assert verifier_for(embedded_client, "smollm2-135m") is v
    before = v.requests
    thoughts = [f"So {i} + {i} = {2 * i}, and the answer is {2 * i}." for i in range(6)]
    judged = await asyncio.gather(*(v.judge("What is i + i?", t) for t in thoughts))
    assert v.requests - before == 6
    assert v.max_in_flight > 1  # they were sent side by side, not one after the other
    for j in judged:
        assert 0.0 <= j.p_yes <= 1.0 and 0.0 <= j.p_no <= 1.0 and j.p_yes + j.p_no > 0
        assert j.yes == (j.p_yes > j.p_no)


# -- `junto chat` shows the decisions live -----------------------------------------------------

@llamacpp
def test_chat_cli_shows_plan_and_trim_events(embedded_pool):
    from helpers import run_cli

    proc = run_cli("chat", "-p", "embedded", "--strategy", "thoughtmani", "--temperature", "0", "--max-tokens", "48",
                   "Tom has 3 apples and buys 4 more. How many apples does he have?")
    assert proc.returncode == 0, proc.stderr
    assert "roles: planner smollm2-135m, reasoner smollm2-135m" in proc.stderr
    assert "plan by smollm2-135m" in proc.stderr and "decision:" in proc.stderr
    assert proc.stdout.strip() and "Traceback" not in proc.stderr

    proc = run_cli("chat", "-p", "embedded", "--strategy", "trimr", "--temperature", "0", "--max-tokens", "16",
                   "--param", "thinking_budget=48", "--json",
                   "Explain in detail, step by step, how to compute 17 * 23.")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["strategy"] == "trimr" and out["reasoning_content"].strip()
    # cut at 50 % of the 48-token budget: a token or two past 24; the answer is capped by --max-tokens
    assert 24 <= out["usage"]["reasoning_tokens"] <= 30
    assert out["usage"]["completion_tokens"] <= out["usage"]["reasoning_tokens"] + 16

    proc = run_cli("chat", "-p", "embedded", "--strategy", "trimr", "--temperature", "0", "--max-tokens", "16",
                   "--param", "thinking_budget=48", "Explain in detail, step by step, how to compute 17 * 23.")
    assert proc.returncode == 0, proc.stderr
    assert "trimr: underthinking at thought" in proc.stderr

    bad = run_cli("chat", "-p", "embedded", "--strategy", "trimr", "--param", "consecutive=1", "hi")
    assert bad.returncode != 0 and "consecutive" in bad.stderr and "Traceback" not in bad.stderr


@llamacpp
async def test_a_hung_verifier_never_blocks_the_thinking(embedded_pool):
    """The verifier is a real loopback server that never answers: decoding goes on, the thinking ends by
    itself, and the pending check is dropped (fault injection: bench/stub_server.py --mode hang)."""
    import time

    from helpers import stub_server

    from junto.pool.client import PoolClient

    _, endpoints = embedded_pool
    with stub_server("hang") as (url, _proc):
        pool = parse_pool({"name": "hung", "deployments": [
            {"name": "reasoner", "backend": "llamacpp", "model": "embedded:smollm2-135m",
             "url": endpoints["smollm2-135m"]},
            {"name": "verifier", "backend": "openai", "model": "stub", "url": url, "timeout_s": 60,
             "capabilities": {"logprobs": True, "top_logprobs": True}}]})
        q = [{"role": "user", "content": "Compute 12 * 5. Then write a blank line. Then check it again: Wait, is "
                                         "12 * 5 really 60? Then write a blank line and check once more."}]
        async with PoolClient(pool) as client:
            ctx = RunContext(client=client, pool=pool, candidates=["reasoner"])
            t0 = time.perf_counter()
            events, r = await collect("trimr", ctx, {"temperature": 0, "seed": 0, "thinking_budget": 200,
                                                     "answer_tokens": 16, "verifier": "verifier"}, q)
            took = time.perf_counter() - t0
            v = verifier_for(client, "verifier")
            await asyncio.sleep(0.05)
            assert not v._running  # the hung request was dropped with the check that waited on it
    assert r.extra["verifier_calls"] >= 1 and r.extra["ended"] == "closed"
    assert not [e for e in events if e["type"] == "thought" and e["by"] == "verifier"]  # no verdict ever came
    assert took < 30  # far below the verifier's 60 s timeout: nothing waited on it
    assert r.extra["thinking_tokens"] > 0 and r.text


@llamacpp
async def test_a_failing_planner_means_the_reasoner_thinks_by_itself(embedded_pool):
    """The planner is a real loopback server answering HTTP 500 (fault injection): no plan, so the reasoner
    thinks on the plain path — the run does not fail, and the result says why there was no plan."""
    from helpers import stub_server

    from junto.pool.client import PoolClient

    _, endpoints = embedded_pool
    with stub_server("error500") as (url, _proc):
        pool = parse_pool({"name": "broken-planner", "default": "reasoner", "deployments": [
            {"name": "reasoner", "backend": "llamacpp", "model": "embedded:smollm2-135m",
             "url": endpoints["smollm2-135m"]},
            {"name": "planner", "backend": "openai", "model": "stub", "url": url, "connect_retries": 0}]})
        async with PoolClient(pool) as client:
            ctx = RunContext(client=client, pool=pool, candidates=["reasoner"])
            events, r = await collect("thoughtmani", ctx, {"temperature": 0, "seed": 0, "planner": "planner",
                                                           "reasoner": "reasoner", "thinking_budget": 64,
                                                           "answer_tokens": 16})
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1 and errors[0]["deployment"] == "planner" and "HTTP 500" in errors[0]["error"]
    assert r.extra["plan"] is None and r.extra["plan_stop"] and "HTTP 500" in r.extra["plan_error"]
    assert r.extra["ended"] in ("closed", "budget") and r.extra["thinking_tokens"] > 0
    assert r.usage.completion_tokens == r.extra["thinking_tokens"] + r.extra["answer_tokens"]
