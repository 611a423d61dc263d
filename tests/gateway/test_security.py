"""API keys, rate limits, request-size limit, and the refusal to listen publicly without a key."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from helpers import free_port, run_cli, serve

from junto.gateway.limits import KeyInfo, KeyStore, RateLimiter

Q = [{"role": "user", "content": "hi"}]


def chat(url: str, key: str | None, **kw) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/v1/chat/completions", json={"model": "junto-auto", "messages": Q, "max_tokens": 2},
                      headers=headers, timeout=60, **kw)


def real_pool(embedded_pool) -> dict:
    """The session's real llama.cpp server, as an external deployment of the gateway's pool."""
    return {"name": "real", "deployments": [{"name": "s", "backend": "openai", "model": "smollm2-135m",
                                             "url": embedded_pool[1]["smollm2-135m"]}]}


def test_keys_are_hashed_and_required(tmp_path, embedded_pool):
    alice = "sk-alice-" + "a" * 24
    cfg = {"gateway": {"api_keys": [{"name": "alice", "sha256": hashlib.sha256(alice.encode()).hexdigest()}],
                       "api_keys_env": "TEST_JUNTO_KEYS"}}
    cfg["pool"] = real_pool(embedded_pool)
    with serve(cfg, tmp_path, env={"TEST_JUNTO_KEYS": "sk-bob-1,sk-carol-2"}) as (url, _):
        assert chat(url, None).status_code == 401
        r = chat(url, "sk-wrong")
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert chat(url, alice).status_code == 200
        assert chat(url, "sk-carol-2").status_code == 200
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/healthz").status_code == 200  # liveness stays open for orchestrators
    assert alice not in (tmp_path / next(p.name for p in tmp_path.glob("junto-*.yaml"))).read_text()


def test_rate_limit_answers_429_with_retry_after(tmp_path, embedded_pool):
    cfg = {"pool": real_pool(embedded_pool),
           "gateway": {"api_keys": [{"name": "k", "key_env": "TEST_KEY", "requests_per_minute": 2}]}}
    with serve(cfg, tmp_path, env={"TEST_KEY": "sk-test"}) as (url, _):
        assert [chat(url, "sk-test").status_code for _ in range(2)] == [200, 200]
        r = chat(url, "sk-test")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limit_exceeded"


def test_request_size_limit(tmp_path, embedded_pool):
    with serve({"pool": real_pool(embedded_pool), "gateway": {"max_body_bytes": 4096}}, tmp_path) as (url, _):
        big = [{"role": "user", "content": "x" * 10_000}]
        r = httpx.post(f"{url}/v1/chat/completions", json={"model": "junto-auto", "messages": big})
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

        def chunks():  # no content-length: the limit holds for chunked bodies too
            yield b'{"model": "junto-auto", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}]}'

        r = httpx.post(f"{url}/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert chat(url, None).status_code == 200


def test_refuses_public_bind_without_key():
    proc = run_cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), env={"JUNTO_API_KEYS": ""}, timeout=60)
    assert proc.returncode == 2
    assert "refusing to listen on 0.0.0.0" in proc.stderr and "JUNTO_API_KEYS" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_key_lookup_and_buckets_pure():
    digest = hashlib.sha256(b"k1").hexdigest()
    store = KeyStore([KeyInfo("one", digest), KeyInfo("two", hashlib.sha256(b"k2").hexdigest())])
    assert store.lookup("k1").name == "one" and store.lookup("k2").name == "two"
    assert store.lookup("k3") is None and store.lookup("") is None
    now = [0.0]
    rl = RateLimiter(clock=lambda: now[0])
    assert [rl.check("a", 3, None) for _ in range(4)] == [0, 0, 0, 20]  # 3/min: one more after 20 s
    now[0] += 20
    assert rl.check("a", 3, None) == 0
    rl.charge_tokens("b", 600, 700)  # over budget by 100 tokens at 10 tokens/s
    assert rl.check("b", None, 600) == pytest.approx(11, abs=1)
    now[0] += 11
    assert rl.check("b", None, 600) == 0


def test_limiter_maps_stay_bounded_over_many_clients():
    """Anonymous clients are keyed by address: the limiter forgets the least recent, never grows past its bound."""
    now = [0.0]
    rl = RateLimiter(clock=lambda: now[0], max_clients=100)
    for i in range(1000):
        assert rl.check(f"10.0.{i // 256}.{i % 256}", 1, 1000) == 0
    assert len(rl._req) == 100 and len(rl._tok) == 100
    # a recent client keeps its (spent) bucket: its limit still holds
    assert rl.check("10.0.3.231", 1, 1000) > 0
