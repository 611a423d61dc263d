"""A sample cut by max_tokens does not vote (unless allowed): real output of the embedded llama.cpp server.

With ``max_tokens=4`` SmolLM2 starts "12 + …" on a question whose answer takes a sentence; read as
it is, such a fragment would vote with its last number.
"""

from __future__ import annotations

import pytest

from junto.reasoning import RunContext, stream_strategy
from junto.answers import answer_keys

pytestmark = pytest.mark.llamacpp

Q = [{"role": "user", "content": "What is 12 + 30? Explain your reasoning step by step, then give the answer."}]


async def run(name, ctx, params):
    events = [ev async for ev in stream_strategy(name, ctx, Q, params)]
    return events, events[-1]["result"]


def ctx_for(client, pool, candidates=None):
    return RunContext(client=client, pool=pool, candidates=candidates or [pool.default_deployment.name], max_tokens=4)


async def test_truncated_samples_do_not_vote_by_default(embedded_pool, embedded_client):
    pool, _ = embedded_pool
    events, r = await run("sc", ctx_for(embedded_client, pool), {"samples": 3, "early_stop": "none", "seed": 1})
    samples = [ev for ev in events if ev["type"] == "sample"]
    assert len(samples) == 3
    assert all(ev["finish_reason"] == "length" and ev["truncated"] for ev in samples), "max_tokens=4 cuts every one"
    assert all(not ev["valid"] and ev["answer"] is None for ev in samples)
    assert any(ev["raw_answer"] for ev in samples), "the fragments do hold something a parser would read"
    tally = [ev for ev in events if ev["type"] == "tally"][-1]
    assert tally["truncated"] == 3 and tally["valid"] == 0 and tally["votes"] == {}
    assert r.answer == "" and r.votes == {} and r.extra["no_valid_answer"]
    assert r.extra["truncated"] == 3 and r.extra["valid"] == 0 and r.extra["allow_truncated"] is False
    decision = next(ev for ev in events if ev["type"] == "decision")
    assert "3 cut by max_tokens" in decision["reason"]


async def test_allow_truncated_lets_them_vote(embedded_pool, embedded_client):
    pool, _ = embedded_pool
    events, r = await run("sc", ctx_for(embedded_client, pool),
                          {"samples": 3, "early_stop": "none", "seed": 1, "allow_truncated": True})
    samples = [ev for ev in events if ev["type"] == "sample"]
    assert all(ev["truncated"] for ev in samples)
    readable = sum(k is not None for k in answer_keys([ev["text"] for ev in samples], "auto"))
    assert readable >= 1
    assert sum(ev["valid"] for ev in samples) == readable == r.extra["valid"]
    assert r.extra["truncated"] == 3 and r.answer != ""
    tally = [ev for ev in events if ev["type"] == "tally"][-1]
    assert tally["truncated"] == 3 and tally["valid"] == readable


async def test_modelswitch_counts_truncated_samples_per_model(embedded_pool, embedded_client):
    pool, _ = embedded_pool
    events, r = await run("modelswitch", ctx_for(embedded_client, pool), {"samples": 2, "seed": 2})
    name = pool.default_deployment.name
    tallies = [ev for ev in events if ev["type"] == "tally"]
    assert tallies and tallies[-1]["truncated"] == 2 and tallies[-1]["valid"] == 0
    assert r.extra["truncated"] == 2 and r.extra["per_model"][name]["truncated"] == 2
    assert r.answer == "" and r.extra["no_valid_answer"]
