"""Strategy graphs against the real embedded llama.cpp server (SmolLM2-135M).

The model is weak, so these tests check the machinery (events, tallies, budgets, determinism,
fallback), not answer quality. Fault injection (a slow server for the deadline) uses the loopback
stub process; a dead endpoint is a real closed port.
"""

from __future__ import annotations

import pytest
from helpers import free_port, stub_server

from junto.errors import BackendError
from junto.pool.client import PoolClient
from junto.pool.config import parse_pool
from junto.reasoning import RunContext, StrategyResult, run_strategy, stream_strategy

pytestmark = pytest.mark.llamacpp

Q = [{"role": "user", "content": "What is 3 + 4? Reply with just the number."}]


def ctx_for(client, pool, candidates=None, **kw) -> RunContext:
    return RunContext(client=client, pool=pool, candidates=candidates or [pool.default_deployment.name],
                      max_samples=kw.pop("max_samples", None), max_tokens=kw.pop("max_tokens", 12),
                      deadline_s=kw.pop("deadline_s", None), **kw)


async def collect(name, ctx, params):
    events = [ev async for ev in stream_strategy(name, ctx, Q, params)]
    assert events[-1]["type"] == "result"
    assert all(ev["type"] != "result" for ev in events[:-1])
    return events, events[-1]["result"]


async def test_direct_streams_tokens_then_the_result(embedded_pool, embedded_client):
    pool, _ = embedded_pool
    events, r = await collect("direct", ctx_for(embedded_client, pool), {"temperature": 0, "seed": 0})
    tokens = [ev["text"] for ev in events if ev["type"] == "token"]
    assert tokens and "".join(tokens) == r.text == r.answer
    assert isinstance(r, StrategyResult) and r.votes is None and r.samples == 1
    assert r.deployments == ["smollm2-135m"] and r.usage.completion_tokens >= 1
    assert [ev["type"] for ev in events][0] == "model_call"


async def test_sc_events_tally_and_carrier(embedded_pool, embedded_client):
    pool, _ = embedded_pool
    events, r = await collect("sc", ctx_for(embedded_client, pool), {"samples": 3, "early_stop": "none", "seed": 11})
    kinds = [ev["type"] for ev in events]
    # no early stopping: one round, its 3 requests fanned out at once, one tally after the round
    assert kinds.count("model_call") == 3 and kinds.count("sample") == 3 and kinds.count("tally") == 1
    assert kinds[-2] == "decision"
    samples = [ev for ev in events if ev["type"] == "sample"]
    assert sorted(ev["index"] for ev in samples) == [0, 1, 2]
    last_tally = [ev for ev in events if ev["type"] == "tally"][-1]
    assert last_tally["votes"] == r.votes and last_tally["samples"] == 3
    assert r.samples == 3 and r.samples_saved == 0 and r.strategy == "sc"
    assert sum(r.votes.values()) == r.extra["valid"] == sum(1 for ev in samples if ev["valid"])
    if r.answer:
        # the carrying sample's text gives the winning answer
        assert any(ev["answer"] == r.answer and ev["text"] == r.text for ev in samples)
        assert r.votes[r.answer] == max(r.votes.values())
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0


async def test_sc_is_reproducible_with_a_seed(embedded_pool, embedded_client):
    pool, _ = embedded_pool
    ctx = ctx_for(embedded_client, pool)
    a = await run_strategy("sc", ctx, Q, {"samples": 3, "seed": 5, "early_stop": "none"})
    b = await run_strategy("sc", ctx, Q, {"samples": 3, "seed": 5, "early_stop": "none"})
    assert a.extra["answers"] == b.extra["answers"] and a.answer == b.answer


async def test_sc_budgets_max_samples_and_tokens(embedded_pool, embedded_client):
    pool, _ = embedded_pool
    r = await run_strategy("sc", ctx_for(embedded_client, pool, max_samples=2, max_tokens=4), Q,
                           {"samples": 10, "early_stop": "none", "seed": 1})
    assert r.samples == 2 and r.extra["budget"] == 2
    assert r.usage.completion_tokens <= 2 * 4
    r = await run_strategy("sc", ctx_for(embedded_client, pool, max_tokens=8), Q,
                           {"samples": 10, "early_stop": "none", "token_budget": 10, "seed": 1,
                            "batch": 1})
    assert r.extra["stopped"] == "token_budget" and 2 <= r.samples < 10 and r.samples_saved == 10 - r.samples


async def test_sc_early_stopping_saves_samples_on_greedy_samples(embedded_pool, embedded_client):
    # temperature 0 makes every sample the same answer: the vote is decided after half the budget
    pool, _ = embedded_pool
    events, r = await collect("sc", ctx_for(embedded_client, pool),
                              {"samples": 6, "temperature": 0, "seed": 2, "batch": 1})  # one sample a round
    assert r.extra["stopped"] == "unbeatable" and r.samples == 3 and r.samples_saved == 3
    assert any(ev["type"] == "stop" and ev["reason"] == "unbeatable" for ev in events)
    r = await run_strategy("sc", ctx_for(embedded_client, pool), Q,
                           {"samples": 16, "temperature": 0, "early_stop": "beta", "seed": 2})
    assert r.extra["stopped"] == "beta" and r.samples == 4


async def test_logprob_weighting_uses_the_servers_logprobs(embedded_pool, embedded_client):
    pool, _ = embedded_pool
    events, r = await collect("sc", ctx_for(embedded_client, pool),
                              {"samples": 2, "weight": "logprob", "early_stop": "none", "seed": 3})
    lps = [ev["mean_logprob"] for ev in events if ev["type"] == "sample"]
    assert all(lp is not None and lp <= 0 for lp in lps)
    assert r.extra["logprobs_seen"] is True
    if r.votes:
        assert all(0 < v <= 2 for v in r.votes.values())


async def test_modelswitch_two_names_on_one_server(embedded_pool):
    # two deployments pointing at the same llama.cpp server: the machinery, not model diversity
    _, endpoints = embedded_pool
    url = next(iter(endpoints.values()))
    pool = parse_pool({"name": "pair", "deployments": [
        {"name": "m1", "backend": "llamacpp", "model": "x", "url": url, "max_concurrency": 1},
        {"name": "m2", "backend": "llamacpp", "model": "x", "url": url, "max_concurrency": 1}]})
    async with PoolClient(pool) as client:
        ctx = ctx_for(client, pool, candidates=["m1", "m2"])
        events, r = await collect("modelswitch", ctx, {"samples": 2, "seed": 4})
        calls = [ev["deployment"] for ev in events if ev["type"] == "model_call"]
        assert sorted(calls) == ["m1", "m1", "m2", "m2"]
        tallies = {ev["deployment"] for ev in events if ev["type"] == "tally"}
        assert tallies == {"m1", "m2"}
        assert r.samples == 4 and r.deployments == ["m1", "m2"]
        assert set(r.extra["per_model"]) == {"m1", "m2"}
        # greedy samples are unanimous: the sequential form never asks model 2
        events, r = await collect("modelswitch", ctx, {"samples": 3, "temperature": 0, "mode": "sequential",
                                                       "seed": 4})
        assert {ev["deployment"] for ev in events if ev["type"] == "model_call"} == {"m1"}
        assert r.samples == 3 and r.samples_saved == 3 and r.extra["stopped"] == "consistent"
        assert r.deployments == ["m1"]


async def test_modelswitch_entropy_vote_with_priors_live(embedded_pool):
    # the weights the graph reports are the reference's, computed from the answers it drew
    _, endpoints = embedded_pool
    url = next(iter(endpoints.values()))
    pool = parse_pool({"name": "pair", "deployments": [
        {"name": "m1", "backend": "llamacpp", "model": "x", "url": url, "max_concurrency": 1},
        {"name": "m2", "backend": "llamacpp", "model": "x", "url": url, "max_concurrency": 1}]})
    async with PoolClient(pool) as client:
        _, r = await collect("modelswitch", ctx_for(client, pool, candidates=["m1", "m2"]),
                             {"samples": 3, "seed": 6, "temperature": 1.0, "threshold": 1.0, "vote": "entropy",
                              "prior_weights": [2.0, 1.0]})
    per = r.extra["per_model"]
    assert per["m1"]["prior_weight"] == 2.0 and per["m2"]["prior_weight"] == 1.0
    for m in ("m1", "m2"):
        assert per[m]["weight"] == pytest.approx(per[m]["consistency_weight"] * per[m]["prior_weight"], abs=1e-3)
    if r.extra["decided_by"] is None or r.extra["models_voting"] == 2:
        # pooled over both: each model's valid votes times its weight
        total = sum(sum(per[m]["votes"].values()) * per[m]["weight"] for m in ("m1", "m2"))
        assert sum(r.votes.values()) == pytest.approx(total, abs=1e-2)


async def test_modelswitch_with_one_candidate_degrades_to_sc(embedded_pool, embedded_client):
    pool, _ = embedded_pool
    r = await run_strategy("modelswitch", ctx_for(embedded_client, pool), Q, {"samples": 2, "seed": 9})
    assert r.samples == 2 and "one candidate" in r.extra["note"]


async def test_direct_falls_back_before_the_first_token(embedded_pool):
    _, endpoints = embedded_pool
    url = next(iter(endpoints.values()))
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here
    pool = parse_pool({"name": "fb", "deployments": [
        {"name": "dead", "backend": "openai", "model": "x", "url": dead, "connect_retries": 0},
        {"name": "live", "backend": "llamacpp", "model": "x", "url": url}]})
    async with PoolClient(pool) as client:
        events, r = await collect("direct", ctx_for(client, pool, candidates=["dead", "live"]), {"temperature": 0})
    assert [ev["deployment"] for ev in events if ev["type"] == "fallback"] == ["dead"]
    assert r.deployments == ["live"] and r.extra["fallbacks"][0]["deployment"] == "dead"


async def test_deadline_stops_sampling_with_what_it_has():
    # fault injection: a server that takes 0.4 s per answer, and a 1 s deadline for 20 samples
    with stub_server("slow", delay=0.4) as (url, _):
        pool = parse_pool({"name": "slow", "deployments": [
            {"name": "slow", "backend": "llamacpp", "model": "x", "url": url, "max_concurrency": 1}]})
        async with PoolClient(pool) as client:
            r = await run_strategy("sc", ctx_for(client, pool, deadline_s=1.0), Q, {"samples": 20, "early_stop": "none"})
            assert r.extra["stopped"] == "deadline" and 1 <= r.samples < 20
            assert r.latency_s < 2.0
            with pytest.raises(BackendError) as e:
                await run_strategy("sc", ctx_for(client, pool, deadline_s=0.1), Q, {"samples": 3})
            assert "deadline" in e.value.message
