"""Two real `junto serve` processes sharing one real redis-server, in front of the real embedded llama.cpp server.

* a key limited to N requests a minute gets exactly N through the pair (and 2N with in-process stores);
* a deployment cooled down by one gateway is skipped by the other (the failing one is a stub answering 500);
* Redis killed with SIGKILL under load: every request is still answered (200, or 429 for the limited
  key), each gateway warns once and reports ``store: degraded`` in /readyz and ``junto_store_up 0`` in
  /metrics; Redis restarted on the same port: both gateways share state again.
"""

from __future__ import annotations

import hashlib
import threading
import time

import httpx
from helpers import serve, stub_server

Q = [{"role": "user", "content": "Say hi."}]
KEYS = {"tight": "sk-tight-" + "t" * 20, "bulk": "sk-bulk-" + "b" * 20}


def config(pool: dict, store: str, rpm: int, **gateway) -> dict:
    keys = [{"name": "tight", "sha256": hashlib.sha256(KEYS["tight"].encode()).hexdigest(), "requests_per_minute": rpm},
            {"name": "bulk", "sha256": hashlib.sha256(KEYS["bulk"].encode()).hexdigest(),
             "requests_per_minute": 1_000_000}]
    return {"pool": pool, "store": {"url": store, "retry_s": 0.3, "health_sync_s": 0.2},
            "gateway": {"api_keys": keys, "api_keys_env": None, "max_tokens_limit": 2, **gateway}}


def real_pool(embedded_pool) -> dict:
    return {"name": "real", "deployments": [{"name": "smol", "backend": "openai", "model": "smollm2-135m",
                                             "url": embedded_pool[1]["smollm2-135m"]}]}


def chat(url: str, key: str, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json={"model": "junto-auto", "messages": Q, "max_tokens": 2},
                      headers={"authorization": f"Bearer {KEYS[key]}"}, timeout=timeout)


def wait_until(cond, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.05)


def metrics(url: str) -> str:
    return httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {KEYS['bulk']}"}, timeout=10).text


def store_status(url: str) -> str:
    return httpx.get(f"{url}/readyz", timeout=10).json()["store"]


def test_a_key_limited_to_n_per_minute_gets_exactly_n_through_two_gateways(embedded_pool, redis_server, tmp_path):
    pool = real_pool(embedded_pool)
    with serve(config(pool, redis_server.url, rpm=4), tmp_path) as (a, _), \
            serve(config(pool, redis_server.url, rpm=4), tmp_path) as (b, _):
        assert store_status(a) == store_status(b) == "ok"
        statuses = [chat(url, "tight").status_code for url in [a, b] * 5]
        assert statuses == [200] * 4 + [429] * 6, statuses
        refused = chat(b, "tight")
        assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 15
        assert chat(a, "bulk").status_code == 200  # another key is not limited by this one
    # the same pair on in-process stores lets the key through twice over: what sharing fixes
    with serve(config(pool, "memory", rpm=4), tmp_path) as (a, _), \
            serve(config(pool, "memory", rpm=4), tmp_path) as (b, _):
        assert store_status(a) == "memory"
        statuses = [chat(url, "tight").status_code for url in [a, b] * 5]
        assert statuses.count(200) == 8, statuses


def test_a_deployment_cooled_down_by_one_gateway_is_skipped_by_the_other(embedded_pool, redis_server, tmp_path):
    with stub_server(mode="error500") as (bad, _):
        pool = {"name": "pair", "deployments": [
            {"name": "primary", "backend": "openai", "model": "stub", "url": bad, "connect_retries": 0},
            {"name": "secondary", "backend": "openai", "model": "smollm2-135m",
             "url": embedded_pool[1]["smollm2-135m"]}]}
        cfg = config(pool, redis_server.url, rpm=1000, cooldown={"failures": 2, "seconds": 60})
        with serve(cfg, tmp_path) as (a, proc_a), serve(cfg, tmp_path) as (b, _):
            for _ in range(2):  # gateway A: primary fails twice (answered by secondary), then cools down
                r = chat(a, "bulk")
                assert r.status_code == 200 and r.headers["x-junto-deployment"] == "secondary"
            assert httpx.get(bad.removesuffix("/v1") + "/stats").json()["chat_requests"] == 2
            wait_until(lambda: "cooling" in httpx.get(f"{b}/readyz").json()["deployments"]["primary"],
                       what="gateway B learning of A's cool-down")
            for _ in range(3):  # gateway B never saw primary fail, and never calls it
                r = chat(b, "bulk")
                assert r.status_code == 200 and r.headers["x-junto-deployment"] == "secondary"
                assert r.json()["junto"]["fallbacks"] == []
            assert httpx.get(bad.removesuffix("/v1") + "/stats").json()["chat_requests"] == 2
            client = redis_server.client()
            try:
                assert client.get("junto:cool:primary").endswith(f":{proc_a.pid}")  # A announced it
                assert 50_000 < client.pttl("junto:cool:primary") <= 60_000
            finally:
                client.close()


def test_redis_killed_under_load_no_request_lost_then_shared_again(embedded_pool, redis_server, tmp_path):
    pool = real_pool(embedded_pool)
    cfg = config(pool, redis_server.url, rpm=3)
    with serve(cfg, tmp_path) as (a, proc_a), serve(cfg, tmp_path) as (b, proc_b):
        results: list[tuple[str, int | str]] = []
        stop = threading.Event()

        def load(url: str) -> None:
            with httpx.Client(timeout=60) as c:
                i = 0
                while not stop.is_set():
                    key = "tight" if i % 3 == 0 else "bulk"
                    i += 1
                    try:
                        r = c.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {KEYS[key]}"},
                                   json={"model": "junto-auto", "messages": Q, "max_tokens": 2})
                        results.append((key, r.status_code))
                    except httpx.HTTPError as exc:  # a lost request: the test fails on it below
                        results.append((key, f"{exc.__class__.__name__}: {exc}"))

        threads = [threading.Thread(target=load, args=(url,)) for url in (a, b, a, b)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(results) >= 10, 60, "load running")
            before = len(results)
            redis_server.kill()
            wait_until(lambda: store_status(a) == "degraded" and store_status(b) == "degraded",
                       what="both gateways reporting the store degraded")
            seen = metrics(a)
            assert 'junto_store_up{kind="redis"} 0.0' in seen
            assert "junto_store_outages_total 1.0" in seen
            wait_until(lambda: len(results) >= before + 20, 60, "load while Redis is down")
            during = len(results)
            redis_server.start()  # same port, empty
            wait_until(lambda: store_status(a) == "ok" and store_status(b) == "ok", what="both gateways reconnecting")
            wait_until(lambda: len(results) >= during + 20, 60, "load after Redis returned")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=120)
        assert before > 0 and during > before and len(results) > during, (before, during, len(results))
        lost = [r for r in results if not isinstance(r[1], int)]
        assert not lost, lost[:5]
        assert {s for k, s in results if k == "bulk"} == {200}
        tight = [s for k, s in results if k == "tight"]
        assert set(tight) <= {200, 429} and 429 in tight
        # at most: 3 shared before the outage, 3 + refills per gateway while down, 3 shared after
        assert tight.count(200) <= 3 + 2 * 4 + 3, tight
        for proc in (proc_a, proc_b):
            log = (tmp_path / f"serve-{proc.args[proc.args.index('--port') + 1]}.log").read_text()
            assert log.count("unreachable") == 1, log[-2000:]
            assert "answers again" in log
        assert 'junto_store_up{kind="redis"} 1.0' in metrics(b)
        # shared again: a fresh limit holds exactly across the pair
        client = redis_server.client()
        try:
            client.delete(*client.keys("junto:rl:*"))  # buckets written since the restart: start the key afresh
        finally:
            client.close()
        statuses = [chat(url, "tight").status_code for url in [a, b] * 3]
        assert statuses == [200] * 3 + [429] * 3, statuses
