"""junto against a real vLLM server (CPU build, SmolLM2-135M-Instruct): chat, streaming, native n,
logprobs, a server that dies and is restarted, and `junto pool down` leaving no process behind.

One server serves the whole module (session fixture). The tests run in file order: the last two
kill the server, so they come last (the death test restarts it, the down test stops it for good).
"""

from __future__ import annotations

import os
import re
import signal
import time

import httpx
import pytest

from junto.errors import BackendError
from junto.pool.types import StreamDelta, StreamEnd

DEP = "smollm2-135m-vllm"
Q = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def chat_http_requests(base_url: str) -> float:
    """POSTs to /v1/chat/completions the server has counted (its Prometheus /metrics)."""
    text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("http_requests_total{") and 'handler="/v1/chat/completions"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_server_started_through_the_launcher_with_the_pool_settings(vllm_server):
    pool, launcher, endpoints, startup_s = vllm_server
    print(f"vLLM start-up: {startup_s:.1f}s")
    (st,) = launcher.status()
    assert st.state == "running" and st.backend == "vllm"
    models = httpx.get(f"{endpoints[DEP]}/models", timeout=5).json()["data"]
    assert [m["id"] for m in models] == [DEP]  # served under the deployment's name
    assert models[0]["max_model_len"] == pool.deployment(DEP).context_length
    rec = launcher.records()[DEP]
    assert "--enable-prefix-caching" in rec.argv and rec.argv[rec.argv.index("--dtype") + 1] == "bfloat16"


async def test_chat(vllm_client):
    r = await vllm_client.chat(DEP, Q, max_tokens=16, temperature=0.0)
    assert r.path == "single" and r.requests == 1 and r.model == DEP
    assert r.text.strip()
    assert r.usage.prompt_tokens > 5 and 0 < r.usage.completion_tokens <= 16 and not r.usage.estimated
    again = await vllm_client.chat(DEP, Q, max_tokens=16, temperature=0.0)
    assert again.text == r.text  # greedy decoding is deterministic


async def test_streaming(vllm_client):
    deltas, ends = [], []
    async for ev in vllm_client.stream(DEP, Q, max_tokens=24, temperature=0.0):
        (deltas if isinstance(ev, StreamDelta) else ends).append(ev)
    assert len(deltas) >= 2 and len(ends) == 1 and isinstance(ends[0], StreamEnd)
    text = "".join(d.text for d in deltas)
    full = await vllm_client.chat(DEP, Q, max_tokens=24, temperature=0.0)
    assert text == full.text  # the stream carries the same greedy answer
    end = ends[0]
    assert end.usage.completion_tokens == full.usage.completion_tokens and not end.usage.estimated
    assert 0 < end.ttft_s <= end.latency_s


async def test_n_samples_are_one_native_request(vllm_client, vllm_server):
    url = vllm_server[2][DEP]
    before = chat_http_requests(url)
    r = await vllm_client.chat(DEP, Q, n=6, max_tokens=12, temperature=1.0, seed=7)
    after = chat_http_requests(url)
    assert r.path == "native-n" and r.requests == 1
    assert after - before == 1, "vLLM should have received exactly one HTTP request for n=6"
    assert [c.index for c in r.choices] == list(range(6))
    assert len({c.text for c in r.choices}) >= 3  # six samples at temperature 1 differ
    assert r.usage.completion_tokens >= 6


async def test_logprobs(vllm_client):
    r = await vllm_client.chat(DEP, Q, n=3, logprobs=True, max_tokens=8, temperature=0.8)
    assert r.path == "native-n" and len(r.choices) == 3
    for c in r.choices:
        assert c.token_logprobs and all(lp <= 0.0 for lp in c.token_logprobs)
        assert c.mean_logprob is not None
    assert sum(len(c.token_logprobs) for c in r.choices) == r.usage.completion_tokens
    greedy = await vllm_client.chat(DEP, Q, logprobs=True, max_tokens=8, temperature=0.0)
    assert greedy.choices[0].token_logprobs is not None
    assert max(greedy.choices[0].token_logprobs) > -5.0  # the argmax token is never very unlikely


async def test_concurrent_requests_are_batched(vllm_client):
    import asyncio

    rs = await asyncio.gather(*(vllm_client.chat(DEP, [{"role": "user", "content": f"Count to {i}."}],
                                                 max_tokens=8, temperature=0.0) for i in range(3, 9)))
    assert all(r.text for r in rs) and len(rs) == 6


async def test_a_server_that_dies_gives_a_clear_error_and_restarts(vllm_server, vllm_client):
    from junto.pool.client import PoolClient
    from junto.pool.launcher import group_members, pid_alive

    pool, launcher, endpoints, _ = vllm_server
    rec = launcher.records()[DEP]
    workers = [p for p in group_members(rec.pid) if p != rec.pid]
    assert workers, "vLLM's engine processes should run beside the API server"
    os.kill(rec.pid, signal.SIGKILL)  # the API server crashes (e.g. the OOM killer); its engine lives on
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pid_alive(rec.pid):
        time.sleep(0.05)
    with pytest.raises(BackendError) as exc:
        await vllm_client.chat(DEP, Q, max_tokens=4)
    err = exc.value
    assert err.deployment == DEP and err.retryable
    assert "cannot connect" in err.message and "junto pool up" in err.hint
    (st,) = launcher.status()
    assert st.state == "dead" and "exited" in st.detail
    # `up` again stops the orphaned engine processes (GBs of memory) and starts a fresh server
    new_endpoints, started = launcher.up()
    assert started == [DEP]
    assert not [p for p in workers if pid_alive(p)], "orphaned vLLM engine processes survived the restart"
    async with PoolClient(pool, new_endpoints) as c:
        r = await c.chat(DEP, Q, max_tokens=8, temperature=0.0)
    assert r.text and r.path == "single"


def test_pool_down_leaves_no_process_behind(vllm_server):
    from helpers import run_cli

    from junto.pool.launcher import group_members, pid_alive

    pool, launcher, _, _ = vllm_server
    rec = launcher.records()[DEP]
    members = group_members(rec.pid)
    # the API server spawned its engine core: a down that killed only the first pid would leak it
    assert len(members) >= 2, f"expected vLLM's engine process beside the API server, got {members}"
    r = run_cli("pool", "down", "--pool", str(pool.source), timeout=120)
    assert r.returncode == 0, r.stderr
    assert re.search(r"stopped 1 server", r.stdout)
    alive = [p for p in members if pid_alive(p)] + [p for p in group_members(rec.pid) if pid_alive(p)]
    assert not alive, f"processes left after `junto pool down`: {alive}"
    (st,) = launcher.status()
    assert st.state == "stopped"
