"""Replicas behind one deployment (``backend: openai`` with ``urls``): two real llama.cpp servers (llama-server,
the embedded model), requests spread across both, and failover when one is killed with SIGKILL.

The servers say who answered: each answers with its own ``--alias`` as ``model``, and counts the tokens
it generated in its Prometheus ``/metrics``.
"""

from __future__ import annotations

import os
import re
import signal

import httpx
import pytest
from helpers import serve
from junto.errors import ConfigError
from junto.pool.config import parse_pool
from junto.pool.replicas import ReplicaSet

Q = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def two_servers(state_root):
    """Two llama-server processes of the embedded model, started by junto's launcher; (launcher, {alias: url})."""
    from junto.pool.launcher import Launcher, pid_alive

    def dep(name: str) -> dict:
        return {"name": name, "backend": "llamacpp", "model": "embedded:smollm2-135m-instruct",
                "max_concurrency": 1, "launch": {"server": "llama-server", "n_threads": 1, "extra_args": ["--metrics"]}}

    pool = parse_pool({"name": "replica-pair", "deployments": [dep("rep-a"), dep("rep-b")]})
    launcher = Launcher(pool, state_root)
    endpoints, _ = launcher.up()
    pids = {n: r.pid for n, r in launcher.records().items()}
    try:
        yield launcher, endpoints, pids
    finally:
        launcher.down()
        assert not [p for p in pids.values() if pid_alive(p)], "llama-server left running"


def generated(url: str) -> int:
    """Tokens the server at ``url`` (…/v1) has generated so far (llama-server's own counter)."""
    text = httpx.get(url.removesuffix("/v1") + "/metrics", timeout=10).text
    return int(float(re.search(r"^llamacpp:tokens_predicted_total (\S+)$", text, re.MULTILINE).group(1)))


def replica_pool(urls: list[str]) -> dict:
    return {"name": "replicated", "deployments": [
        {"name": "smol", "backend": "openai", "model": "smollm2", "urls": urls, "connect_retries": 0}]}


async def test_requests_spread_over_replicas_and_fail_over_when_one_dies(two_servers, tmp_path):
    from junto.pool.client import PoolClient

    _, eps, pids = two_servers
    urls = [eps["rep-a"], eps["rep-b"]]
    pool = parse_pool(replica_pool(urls))
    before = {n: generated(u) for n, u in eps.items()}
    with serve({"pool": replica_pool(urls)}, tmp_path) as (gw, _):
        assert readiness(gw) == "ready (2/2 replicas)"
        async with PoolClient(pool) as client:
            answered = [(await client.chat("smol", Q, max_tokens=2)).model for _ in range(6)]
            assert answered == ["rep-a", "rep-b"] * 3  # in turn
            after = {n: generated(u) for n, u in eps.items()}
            assert all(after[n] > before[n] for n in eps), (before, after)  # both servers did the work

            os.killpg(pids["rep-a"], signal.SIGKILL)
            answered = [(await client.chat("smol", Q, max_tokens=2)).model for _ in range(4)]
            assert answered == ["rep-b"] * 4  # no request failed: the dead replica's turn went to the live one
            streamed = [ev async for ev in client.stream("smol", Q, max_tokens=2)]
            assert streamed[-1].model == "rep-b"
            replicas = client.replicas["smol"]
            assert replicas.failures[urls[0]] == 1  # refused once, then skipped while it is down
            assert replicas.is_down(urls[0]) and not replicas.is_down(urls[1])
        # the gateway (its own client, its own turns) keeps answering, and says one replica is gone
        for stream in (False, True, False, False):
            r = httpx.post(f"{gw}/v1/chat/completions", timeout=60,
                           json={"model": "junto-auto", "messages": Q, "max_tokens": 2, "stream": stream})
            assert r.status_code == 200, r.text
        assert readiness(gw) == "ready (1/2 replicas)"


def readiness(gateway: str) -> str:
    return httpx.get(f"{gateway}/readyz", timeout=10).json()["deployments"]["smol"]


def test_replica_set_turns_and_pauses():
    now = [0.0]
    rs = ReplicaSet(["http://a/v1", "http://b/v1", "http://c/v1"], down_s=5, clock=lambda: now[0])
    assert [rs.pick() for _ in range(4)] == ["http://a/v1", "http://b/v1", "http://c/v1", "http://a/v1"]
    rs.failed("http://b/v1")
    assert [rs.pick() for _ in range(3)] == ["http://c/v1", "http://a/v1", "http://c/v1"]
    assert rs.pick(exclude={"http://a/v1", "http://c/v1"}) == "http://b/v1"  # every other one excluded: try it
    assert rs.pick(exclude={"http://a/v1", "http://b/v1", "http://c/v1"}) is None
    now[0] = 5.0  # its pause is over
    assert "http://b/v1" in {rs.pick() for _ in range(3)}
    assert rs.base_of("http://b/v1/chat/completions") == "http://b/v1" and rs.base_of("http://bb/v1") is None


@pytest.mark.parametrize(("dep", "message"), [
    ({"backend": "openai", "urls": ["http://a/v1", "http://a/v1/"]}, "lists a replica twice"),
    ({"backend": "openai", "urls": ["a:8000/v1"]}, "urls[0] 'a:8000/v1' must start with http:// or https://"),
    ({"backend": "openai", "url": "http://x/v1", "urls": ["http://a/v1"]}, "either 'url'"),
    ({"backend": "llamacpp", "urls": ["http://a/v1", "http://b/v1"]}, "'urls' (a replica set) is for backend 'openai'"),
])
def test_bad_replica_lists_are_refused(dep, message):
    with pytest.raises(ConfigError) as err:
        parse_pool({"name": "p", "deployments": [{"name": "d", "model": "m", **dep}]}, "pool.yaml")
    assert "pool.yaml: deployments[0]" in err.value.message and message in err.value.message


def test_url_then_stays_the_first_replica():
    dep = parse_pool(replica_pool(["http://a:1/v1/", "http://b:2/v1"])).deployments[0]
    assert dep.url == "http://a:1/v1" and dep.urls == ["http://a:1/v1", "http://b:2/v1"] and not dep.managed
