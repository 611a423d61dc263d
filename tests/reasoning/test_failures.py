"""A failed sample does not fail the run, and health is claimed and reported by the strategies.

Faults come from real server processes on loopback (bench/stub_server.py answering 500 or 400, or
killed mid-run); answers come from the real embedded llama.cpp server. A stub is used only to
inject the fault.
"""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest
from helpers import stub_server

from junto.errors import BackendError
from junto.health import HealthTracker
from junto.pool.client import PoolClient
from junto.pool.config import parse_pool
from junto.reasoning import RunContext, stream_strategy

pytestmark = pytest.mark.llamacpp

Q = [{"role": "user", "content": "What is 3 + 4? Reply with just the number."}]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def mixed_pool(live_url: str, backend: str = "openai", **stubs: str):
    """The real embedded server as ``live`` (and ``live2``), plus stub deployments ``name=url``.

    ``backend="llamacpp"`` makes the stubs ignore ``n`` (one concurrent request per sample)."""
    deps = [{"name": n, "backend": backend, "model": "stub", "url": u, "connect_retries": 0, "max_concurrency": 4}
            for n, u in stubs.items()]
    deps += [{"name": n, "backend": "llamacpp", "model": "x", "url": live_url, "max_concurrency": 1}
             for n in ("live", "live2")]
    return parse_pool({"name": "mixed", "deployments": deps})


def live_url(embedded_pool) -> str:
    return next(iter(embedded_pool[1].values()))


async def collect(name, ctx, params, messages=Q):
    events = [ev async for ev in stream_strategy(name, ctx, messages, params)]
    assert events[-1]["type"] == "result"
    return events, events[-1]["result"]


def stub_requests(url: str) -> int:
    return httpx.get(url.removesuffix("/v1") + "/stats").json()["chat_requests"]


def make_half_open(health: HealthTracker, clock: Clock, name: str) -> None:
    for _ in range(health.failures):
        health.failure(name)
    clock.t += health.seconds
    assert health.state(name) == "half-open"


async def test_sc_falls_back_when_the_first_deployment_yields_nothing(embedded_pool):
    with stub_server("error500") as (bad, _):
        pool = mixed_pool(live_url(embedded_pool), bad=bad)
        health = HealthTracker(failures=1, seconds=60)
        async with PoolClient(pool) as client:
            ctx = RunContext(client=client, pool=pool, candidates=["bad", "live"], max_tokens=16, health=health)
            events, r = await collect("sc", ctx, {"samples": 3, "early_stop": "none", "temperature": 0})
    fallback = [ev for ev in events if ev["type"] == "fallback"]
    assert [(ev["deployment"], ev["to"]) for ev in fallback] == [("bad", "live")]
    errors = [ev for ev in events if ev["type"] == "error"]
    assert errors and all(ev["deployment"] == "bad" and ev["kind"] == "backend_error" for ev in errors)
    assert r.samples == 3 and r.deployments == ["live"] and r.extra["stopped"] == "budget"
    assert set(r.extra["sample_models"]) == {"live"}
    assert r.extra["fallbacks"][0]["deployment"] == "bad" and "500" in r.extra["fallbacks"][0]["error"]
    assert r.extra["errors"] and {e["status_code"] for e in r.extra["errors"]} == {500}
    assert r.extra["failed"] == 3  # the three requests to bad; the vote is over live's three samples
    assert health.state("bad") == "cooling" and health.state("live") == "ok"


async def test_sc_goes_on_with_the_samples_it_has_when_a_server_dies(embedded_pool):
    # one sample per round from a slow stub; the stub process is killed mid-run
    with stub_server("slow", delay=0.3) as (url, proc):
        pool = parse_pool({"name": "dying", "deployments": [
            {"name": "dying", "backend": "openai", "model": "stub", "url": url, "connect_retries": 0,
             "max_concurrency": 1}]})
        health = HealthTracker(failures=3, seconds=60)
        async with PoolClient(pool) as client:
            ctx = RunContext(client=client, pool=pool, candidates=["dying"], health=health)

            async def kill_later() -> None:
                while stub_requests(url) < 3:
                    await asyncio.sleep(0.05)
                os.killpg(proc.pid, signal.SIGKILL)

            killer = asyncio.create_task(kill_later())
            events, r = await collect("sc", ctx, {"samples": 12, "early_stop": "none", "batch": 1})
            await killer
    assert 2 <= r.samples < 12
    assert r.extra["stopped"] == "backend_error" and r.extra["stopped"] != "deadline"
    assert r.extra["errors"] and r.extra["errors"][-1]["kind"] == "backend_error"
    assert r.extra["failed"] >= 1 and r.samples_saved == 0
    stop = [ev for ev in events if ev["type"] == "stop"]
    assert stop and stop[-1]["reason"] == "backend_error"
    assert health.total_failures("dying") >= 1


async def test_sc_raises_a_truthful_error_when_nothing_answers():
    with stub_server("error500") as (a, _), stub_server("error500") as (b, _):
        pool = parse_pool({"name": "down", "deployments": [
            {"name": n, "backend": "openai", "model": "stub", "url": u, "connect_retries": 0} for n, u in
            (("a", a), ("b", b))]})
        async with PoolClient(pool) as client:
            ctx = RunContext(client=client, pool=pool, candidates=["a", "b"])
            with pytest.raises(BackendError) as e:
                await collect("sc", ctx, {"samples": 2, "early_stop": "none"})
    msg = e.value.message
    assert "deadline" not in msg and "a, b" in msg and "500" in msg
    assert e.value.retryable and e.value.status_code == 500


async def test_a_refused_request_is_the_clients_fault_not_an_outage():
    with stub_server("error400") as (url, _):
        pool = parse_pool({"name": "refuses", "deployments": [
            {"name": "r", "backend": "openai", "model": "stub", "url": url, "connect_retries": 0},
            {"name": "s", "backend": "openai", "model": "stub", "url": url, "connect_retries": 0}]})
        health = HealthTracker(failures=1, seconds=60)
        async with PoolClient(pool) as client:
            ctx = RunContext(client=client, pool=pool, candidates=["r", "s"], health=health)
            with pytest.raises(BackendError) as e:
                await collect("sc", ctx, {"samples": 2, "early_stop": "none"})
            assert stub_requests(url) == 1, "a 400 is not retried on the next candidate"
    assert e.value.status_code == 400 and e.value.client_fault
    assert health.state("r") == "ok", "the refusal says nothing about the deployment's health"


async def test_modelswitch_continues_without_a_failed_model(embedded_pool):
    with stub_server("error500") as (bad, _):
        pool = mixed_pool(live_url(embedded_pool), bad=bad)
        async with PoolClient(pool) as client:
            ctx = RunContext(client=client, pool=pool, candidates=["bad", "live"], max_tokens=16)
            events, r = await collect("modelswitch", ctx, {"samples": 2, "temperature": 0})
    assert r.deployments == ["live"] and r.samples == 2
    assert r.extra["stopped"] == "backend_error"
    assert r.extra["fallbacks"] == [{"deployment": "bad", "error": r.extra["fallbacks"][0]["error"], "to": None}]
    assert r.extra["failed"] == 2 and {e["deployment"] for e in r.extra["errors"]} == {"bad"}
    assert [ev["deployment"] for ev in events if ev["type"] == "fallback"] == ["bad"]


async def test_modelswitch_replaces_a_failed_model_with_the_next_candidate(embedded_pool):
    with stub_server("error500") as (bad, _):
        pool = mixed_pool(live_url(embedded_pool), bad=bad)
        async with PoolClient(pool) as client:
            ctx = RunContext(client=client, pool=pool, candidates=["bad", "live", "live2"], max_tokens=16)
            events, r = await collect("modelswitch", ctx, {"samples": 2, "temperature": 0, "mode": "sequential"})
    fb = [ev for ev in events if ev["type"] == "fallback"]
    assert [(ev["deployment"], ev["to"]) for ev in fb] == [("bad", "live2")]
    # live (now model 1) is unanimous at temperature 0: the switching stops before live2
    assert r.deployments == ["live"] and r.extra["stopped"] == "consistent" and r.samples == 2
    assert r.extra["candidates"] == ["live", "live2"]


async def test_a_half_open_deployment_ranked_second_keeps_its_probe(embedded_pool):
    with stub_server("ok") as (recovering, _):
        pool = mixed_pool(live_url(embedded_pool), recovering=recovering)
        clock = Clock()
        health = HealthTracker(failures=2, seconds=30, clock=clock)
        make_half_open(health, clock, "recovering")
        async with PoolClient(pool) as client:
            # ranked second and never called: sc samples the first candidate only
            ctx = RunContext(client=client, pool=pool, candidates=["live", "recovering"], max_tokens=16,
                             health=health)
            _, r = await collect("sc", ctx, {"samples": 2, "early_stop": "none", "temperature": 0})
            assert r.deployments == ["live"] and stub_requests(recovering) == 0
            assert health.state("recovering") == "half-open" and health.available("recovering")
            # ranked first: the run probes it; the success brings it back
            ctx = RunContext(client=client, pool=pool, candidates=["recovering", "live"], max_tokens=16,
                             health=health)
            _, r = await collect("sc", ctx, {"samples": 3, "early_stop": "none"})
    assert r.deployments == ["recovering"] and r.samples == 3
    assert health.state("recovering") == "ok"


async def test_concurrent_samples_wait_for_the_probe_instead_of_piling_on():
    with stub_server("slow", delay=0.3) as (url, _):
        pool = parse_pool({"name": "probe", "deployments": [
            # a server that ignores n (as llama.cpp does): the samples are concurrent requests
            {"name": "p", "backend": "llamacpp", "model": "stub", "url": url, "connect_retries": 0,
             "max_concurrency": 4}]})
        clock = Clock()
        health = HealthTracker(failures=1, seconds=30, clock=clock)
        make_half_open(health, clock, "p")
        async with PoolClient(pool) as client:
            ctx = RunContext(client=client, pool=pool, candidates=["p"], health=health)
            events, r = await collect("sc", ctx, {"samples": 4, "early_stop": "none"})
    assert r.samples == 4 and health.state("p") == "ok"
    calls = [i for i, ev in enumerate(events) if ev["type"] == "model_call"]
    first_sample = next(i for i, ev in enumerate(events) if ev["type"] == "sample")
    # the probe's answer arrived before any other call was sent
    assert calls[0] < first_sample < calls[1]


async def test_a_failed_probe_is_reported_from_the_strategy(embedded_pool):
    with stub_server("error500") as (recovering, _):
        pool = mixed_pool(live_url(embedded_pool), backend="llamacpp", recovering=recovering)
        clock = Clock()
        health = HealthTracker(failures=2, seconds=30, clock=clock)
        make_half_open(health, clock, "recovering")
        async with PoolClient(pool) as client:
            ctx = RunContext(client=client, pool=pool, candidates=["recovering", "live"], max_tokens=16,
                             health=health)
            # two concurrent samples: one probes, the other waits for its verdict and is not sent
            events, r = await collect("sc", ctx, {"samples": 2, "early_stop": "none", "temperature": 0})
        assert stub_requests(recovering) == 1, "exactly one probe reached the recovering deployment"
    assert r.deployments == ["live"] and r.samples == 2
    assert health.state("recovering") == "cooling"
    kinds = sorted(ev["kind"] for ev in events if ev["type"] == "error" and ev["deployment"] == "recovering")
    assert kinds == ["backend_error", "unavailable"]


async def test_xolver_does_not_call_an_agent_deployment_whose_circuit_opened(embedded_pool):
    """Round 1: the agent on a failing deployment errs and its circuit opens; round 2: it is not called at all, the
    other agent answers, and the run ends with that answer."""
    with stub_server("error500") as (bad, _):
        pool = mixed_pool(live_url(embedded_pool), bad=bad)
        health = HealthTracker(failures=1, seconds=60)
        async with PoolClient(pool) as client:
            ctx = RunContext(client=client, pool=pool, candidates=["live", "bad"], health=health)
            events, r = await collect("xolver", ctx, {
                "agents": 2, "rounds": 2, "agent_models": ["bad", "live"], "planner": "live", "judge": "live",
                "early_stop": False, "max_tokens": 16, "plan_tokens": 16, "temperature": 0})
        sent = stub_requests(bad)
    errors = [ev for ev in events if ev["type"] == "error" and ev["deployment"] == "bad"]
    assert [(ev["round"], ev["kind"]) for ev in errors] == [(1, "backend_error"), (2, "unavailable")]
    assert sent >= 1 and health.state("bad") == "cooling"
    assert {e["round"] for e in r.extra["errors"]} == {1, 2} and r.extra["rounds_run"] == 2
    assert r.deployments[0] == "live" and r.text
