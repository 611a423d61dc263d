"""``answer_direct``, the one ``direct`` implementation, against the real embedded llama.cpp server.

Faults: a closed port (nothing listens), and the loopback stub process (dies mid-stream, refuses
with 400, answers slowly) for what a closed port cannot show.
"""

from __future__ import annotations

import time

import pytest
from helpers import free_port, stub_server

from junto.errors import BackendError
from junto.health import HealthTracker
from junto.pool.client import PoolClient
from junto.pool.config import parse_pool
from junto.reasoning.direct.run import DirectAnswer, DirectCall, DirectFallback, DirectToken, answer_direct

pytestmark = pytest.mark.llamacpp

Q = [{"role": "user", "content": "What is 3 + 4? Reply with just the number."}]
P = {"temperature": 0, "max_tokens": 16}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def pool_of(live: str, **others: str):
    deps = [{"name": n, "backend": "openai", "model": "x", "url": u, "connect_retries": 0} for n, u in others.items()]
    deps.append({"name": "live", "backend": "llamacpp", "model": "x", "url": live})
    return parse_pool({"name": "direct", "deployments": deps})


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here


def live_url(embedded_pool) -> str:
    return next(iter(embedded_pool[1].values()))


async def events_of(*args, **kw):
    return [ev async for ev in answer_direct(*args, **kw)]


def half_open(health: HealthTracker, clock: Clock, name: str) -> None:
    for _ in range(health.failures):
        health.failure(name)
    clock.t += health.seconds
    assert health.state(name) == "half-open"


async def test_streams_tokens_then_the_answer(embedded_pool):
    pool = pool_of(live_url(embedded_pool))
    async with PoolClient(pool) as client:
        evs = await events_of(client, ["live"], Q, P)
    assert isinstance(evs[0], DirectCall) and evs[0].deployment == "live"
    tokens = [e.text for e in evs if isinstance(e, DirectToken)]
    ans = evs[-1]
    assert isinstance(ans, DirectAnswer) and tokens and "".join(tokens) == ans.text
    assert ans.deployment == "live" and ans.finish_reason in ("stop", "length") and ans.fallbacks == []
    assert ans.ttft_s is not None and 0 < ans.ttft_s <= ans.latency_s
    assert ans.usage.completion_tokens >= 1


async def test_non_streamed_gives_exact_usage_and_logprobs(embedded_pool):
    pool = pool_of(live_url(embedded_pool))
    async with PoolClient(pool) as client:
        evs = await events_of(client, ["live"], Q, {**P, "logprobs": True, "top_logprobs": 1}, stream=False)
    assert [type(e) for e in evs] == [DirectCall, DirectAnswer]
    ans = evs[-1]
    assert ans.text and ans.usage.estimated is False and ans.usage.prompt_tokens > 0
    assert ans.ttft_s is None and ans.latency_s > 0
    assert ans.logprobs is not None and ans.logprobs.get("content")


async def test_falls_back_before_the_first_token(embedded_pool):
    pool = pool_of(live_url(embedded_pool), dead=dead_url())
    async with PoolClient(pool) as client:
        for stream in (True, False):
            health = HealthTracker(failures=1, seconds=60)
            evs = await events_of(client, ["dead", "live"], Q, P, health=health, stream=stream)
            fb = [e for e in evs if isinstance(e, DirectFallback)]
            assert [e.deployment for e in fb] == ["dead"] and not fb[0].skipped
            ans = evs[-1]
            assert ans.deployment == "live" and ans.fallbacks[0]["deployment"] == "dead"
            assert health.state("dead") == "cooling" and health.state("live") == "ok"


async def test_a_break_after_the_first_token_is_raised_not_spliced(embedded_pool):
    with stub_server("die") as (dying, _):
        pool = pool_of(live_url(embedded_pool), dying=dying)
        health = HealthTracker(failures=1, seconds=60)
        async with PoolClient(pool) as client:
            got = []
            with pytest.raises(BackendError) as e:
                async for ev in answer_direct(client, ["dying", "live"], Q, P, health=health):
                    got.append(ev)
    assert any(isinstance(ev, DirectToken) for ev in got)
    assert not any(isinstance(ev, DirectCall) and ev.deployment == "live" for ev in got)
    assert not e.value.retryable and health.state("dying") == "cooling"


async def test_every_deployment_failing_names_them():
    pool = parse_pool({"name": "dead", "deployments": [
        {"name": n, "backend": "openai", "model": "x", "url": dead_url(), "connect_retries": 0} for n in ("a", "b")]})
    async with PoolClient(pool) as client:
        with pytest.raises(BackendError) as e:
            await events_of(client, ["a", "b"], Q, P)
    assert "every deployment failed (a, b)" in e.value.message and e.value.retryable


async def test_a_refusal_is_raised_without_fallback_or_cooling(embedded_pool):
    with stub_server("error400") as (refuses, _):
        pool = pool_of(live_url(embedded_pool), refuses=refuses)
        health = HealthTracker(failures=1, seconds=60)
        async with PoolClient(pool) as client:
            with pytest.raises(BackendError) as e:
                await events_of(client, ["refuses", "live"], Q, P, health=health)
    assert e.value.status_code == 400 and e.value.client_fault
    assert health.state("refuses") == "ok"


async def test_deadline_bounds_the_answer():
    with stub_server("slow", delay=3.0) as (slow, _):
        pool = parse_pool({"name": "slow", "deployments": [
            {"name": "slow", "backend": "openai", "model": "x", "url": slow, "connect_retries": 0}]})
        async with PoolClient(pool) as client:
            t0 = time.perf_counter()
            with pytest.raises(BackendError):
                await events_of(client, ["slow"], Q, P, stream=False, deadline_s=0.3)
            assert time.perf_counter() - t0 < 2.0


async def test_half_open_ranked_second_is_not_probed_by_a_request_that_does_not_call_it(embedded_pool):
    pool = pool_of(live_url(embedded_pool), recovering=dead_url())
    clock = Clock()
    health = HealthTracker(failures=2, seconds=30, clock=clock)
    half_open(health, clock, "recovering")
    async with PoolClient(pool) as client:
        evs = await events_of(client, ["live", "recovering"], Q, P, health=health)
        assert evs[-1].deployment == "live"
        assert health.state("recovering") == "half-open" and health.available("recovering")
        # a request that ranks it first probes it; the probe fails and it cools again
        evs = await events_of(client, ["recovering", "live"], Q, P, health=health)
    assert [e.deployment for e in evs if isinstance(e, DirectCall)] == ["recovering", "live"]
    assert evs[-1].deployment == "live" and health.state("recovering") == "cooling"


async def test_a_listener_that_hangs_up_frees_the_probe(embedded_pool):
    pool = pool_of(live_url(embedded_pool))
    clock = Clock()
    health = HealthTracker(failures=1, seconds=30, clock=clock)
    half_open(health, clock, "live")
    async with PoolClient(pool) as client:
        gen = answer_direct(client, ["live"], Q, {"temperature": 0, "max_tokens": 64}, health=health)
        async for ev in gen:
            if isinstance(ev, DirectToken):
                assert health.state("live") == "probing"
                break
        await gen.aclose()
    assert health.state("live") == "half-open", "no verdict: the probe is free again"


async def test_when_every_candidate_is_cooling_the_first_is_tried_anyway(embedded_pool):
    pool = pool_of(live_url(embedded_pool), dead=dead_url())
    health = HealthTracker(failures=1, seconds=60)
    health.failure("live")
    health.failure("dead")
    async with PoolClient(pool) as client:
        evs = await events_of(client, ["live", "dead"], Q, P, health=health)
    assert evs[-1].deployment == "live" and health.state("live") == "ok"
