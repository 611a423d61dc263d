"""What a shared Redis store costs the gateway, and what a second gateway replica buys, in one run.

Against one fast stub model server on loopback (bench/stub_server.py: only junto's own overhead is
measured), with a real redis-server on loopback, in the same run:

* latency: sequential non-streamed ``junto-auto`` requests (concurrency 1), interleaved across the
  stub itself (the floor), a gateway on the in-process store and a gateway on the Redis store, both
  with an API key whose request and token limits are checked and charged on every request (the work
  the store does); p50/p99 and the Redis − in-process difference; then the same with wrk -c1;
* throughput at concurrency C (wrk): in-process vs Redis store, one gateway each;
* scaling: one Redis-backed gateway at concurrency C, then two (the same config, sharing the Redis)
  behind a connection-level loopback round robin — two wrk processes of C/2 connections, one per
  gateway, run at once — requests/s summed.

    python bench/bench_stores.py [--seconds 10] [--concurrency 32] [--rounds 1000]

Needs redis-server and wrk (Debian: apt-get install redis-server wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_gateway import latency, start, stop, wrk_throughput  # noqa: E402
from common import save, summary_ms  # noqa: E402
from helpers import free_port, stub_server, wait_http  # noqa: E402

KEY = "sk-bench-" + "k" * 24


def start_redis(tmp: Path) -> tuple[subprocess.Popen, str]:
    import redis

    port = free_port()
    proc = start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--dir", str(tmp)], {}, tmp / "redis.log")
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.RedisError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


def gateway(cfg: dict, tmp: Path, procs: list[subprocess.Popen], tag: str) -> str:
    path = tmp / f"junto-{tag}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    port = free_port()
    procs.append(start([sys.executable, "-m", "junto.cli", "serve", "--config", str(path), "--port", str(port)], {},
                       tmp / f"junto-{tag}.log"))
    wait_http(f"http://127.0.0.1:{port}/healthz", 120, procs[-1])
    return f"http://127.0.0.1:{port}/v1"


async def store_call_latency(redis_url: str, n: int) -> dict:
    """One rate-limit check straight on each store, in this process (no HTTP): the store's own cost."""
    from junto.config import StoreSettings
    from junto.stores import memory_stores, redis_stores

    out = {}
    for name, stores in (("in_process", memory_stores()),
                         ("redis", redis_stores(StoreSettings(url=redis_url, prefix="bench-direct")))):
        await stores.start()
        times = []
        for i in range(n + 100):
            t0 = time.perf_counter()
            await stores.limits.check("k", 10**9, 10**12)
            if i >= 100:
                times.append(time.perf_counter() - t0)
        await stores.aclose()
        out[name] = summary_ms(times)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs so far (Linux /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def measured(run, gateways: list[subprocess.Popen]) -> tuple[object, dict]:
    """``run()``, with the CPU the gateways used and how busy the whole machine was meanwhile."""
    cpu0 = [cpu_seconds(g.pid) for g in gateways]
    busy0, total0 = machine_busy()
    out = run()
    cpu = sum(cpu_seconds(g.pid) - c for g, c in zip(gateways, cpu0))
    busy1, total1 = machine_busy()
    return out, {"gateway_cpu_s": round(cpu, 2), "machine_busy_fraction": round((busy1 - busy0) / max(total1 - total0, 1), 3)}


def median_run(runs: list[dict], key: str) -> dict:
    """The run with the median ``key``, and every run's value of it."""
    ordered = sorted(runs, key=lambda r: r[key])
    return {**ordered[len(ordered) // 2], f"all_{key}": [r[key] for r in runs]}


def parallel_wrk(targets: list[str], concurrency: int, seconds: float, tmp: Path) -> list[dict]:
    results: list[dict] = [{}] * len(targets)

    def one(i: int, url: str) -> None:
        sub = tmp / f"wrk-{i}"
        sub.mkdir(exist_ok=True)
        results[i] = wrk_throughput(url, "junto-auto", {"authorization": f"Bearer {KEY}"}, concurrency, seconds, sub)

    threads = [threading.Thread(target=one, args=(i, u)) for i, u in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "1000")))
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds of every wrk comparison")
    args = ap.parse_args()
    for tool in ("redis-server", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install redis-server wrk")

    tmp = Path(tempfile.mkdtemp(prefix="junto-bench-stores-"))
    procs: list[subprocess.Popen] = []
    headers = {"authorization": f"Bearer {KEY}"}
    try:
        redis_proc, redis_url = start_redis(tmp)
        procs.append(redis_proc)
        with stub_server(tokens=8) as (stub, _):
            pool = {"name": "bench", "deployments": [{"name": "stub", "backend": "openai", "model": "stub",
                                                      "url": stub, "max_concurrency": 4096}]}
            # limits that never bite but are checked (and tokens charged) on every request
            key = {"name": "bench", "sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                   "requests_per_minute": 10**9, "tokens_per_minute": 10**12}

            def cfg(store: str) -> dict:
                return {"pool": pool, "store": store, "gateway": {"api_keys": [key], "api_keys_env": None}}

            mem = gateway(cfg("memory"), tmp, procs, "memory")
            red = gateway(cfg(redis_url), tmp, procs, "redis")
            red_proc = procs[-1]
            red2 = gateway(cfg(redis_url), tmp, procs, "redis-2")
            red2_proc = procs[-1]
            targets = {"direct": (stub, "stub", {}), "in_process": (mem, "junto-auto", headers),
                       "redis": (red, "junto-auto", headers)}
            load_before = os.getloadavg()
            lat = asyncio.run(latency(targets, args.rounds))
            direct = asyncio.run(store_call_latency(redis_url, 2000))
            # every comparison in alternating rounds (A, B, A, B, …), medians reported: other load on the
            # machine then falls on both sides alike
            wrk1_runs: dict[str, list[dict]] = {name: [] for name in targets}
            thr_runs: dict[str, list[dict]] = {"in_process": [], "redis": []}
            one_runs: list[tuple[dict, dict]] = []
            two_runs: list[tuple[list[dict], dict]] = []
            for _ in range(args.repeats):
                for name, (url, model, hdr) in targets.items():
                    wrk1_runs[name].append(wrk_throughput(url, model, hdr, 1, args.seconds / 2, tmp))
                for name, url in (("in_process", mem), ("redis", red)):
                    thr_runs[name].append(wrk_throughput(url, "junto-auto", headers, args.concurrency,
                                                         args.seconds, tmp))
                one_runs.append(measured(lambda: wrk_throughput(red, "junto-auto", headers, args.concurrency,
                                                                args.seconds, tmp), [red_proc]))
                two_runs.append(measured(lambda: parallel_wrk([red, red2], args.concurrency // 2, args.seconds,
                                                              tmp), [red_proc, red2_proc]))
            load_after = os.getloadavg()
            wrk1 = {name: median_run(runs, "latency_p50_ms") for name, runs in wrk1_runs.items()}
            thr = {name: median_run(runs, "requests_per_s") for name, runs in thr_runs.items()}
            one, one_cpu = sorted(one_runs, key=lambda r: r[0]["requests_per_s"])[len(one_runs) // 2]
            two, two_cpu = sorted(two_runs, key=lambda r: sum(x["requests_per_s"] for x in r[0]))[len(two_runs) // 2]
    finally:
        for p in procs:
            stop(p)

    base = statistics.median(lat["direct"])
    latency_py = {}
    for name, v in lat.items():
        s = summary_ms(v)
        s["added_ms_p50_vs_direct"] = round((statistics.median(v) - base) * 1000, 4)
        latency_py[name] = s
    added_wrk = {name: round(v["latency_p50_ms"] - wrk1["direct"]["latency_p50_ms"], 4)
                 for name, v in wrk1.items() if name != "direct"}
    two_rps = round(sum(r["requests_per_s"] for r in two), 1)
    redis_extra_py = round(latency_py["redis"]["p50_ms"] - latency_py["in_process"]["p50_ms"], 4)
    redis_extra_wrk = round(wrk1["redis"]["latency_p50_ms"] - wrk1["in_process"]["latency_p50_ms"], 4)
    results = {
        "setup": {"backend": "bench/stub_server.py on loopback, 8-token answers, model junto-auto (pool order)",
                  "store": "redis-server (Debian) on loopback, no persistence; redis-py asyncio client",
                  "limits": "one API key with requests_per_minute and tokens_per_minute set: every request runs "
                            "the limit check (one Lua script call on Redis) and a token charge (after the answer)",
                  "load_balancer": "connection-level round robin: one wrk per replica, C/2 connections each, run "
                                   "at once (no proxy process)",
                  "repeats": f"{args.repeats} alternating rounds per wrk comparison; the median round reported",
                  "load_average_before_after": [round(x, 2) for x in (*load_before, *load_after)]},
        "latency_concurrency_1_python_client": latency_py,
        "latency_concurrency_1_wrk": {name: {"p50_ms": v["latency_p50_ms"], "p99_ms": v["latency_p99_ms"],
                                             "requests_per_s": v["requests_per_s"]} for name, v in wrk1.items()},
        "added_latency_p50_ms_vs_direct_wrk": added_wrk,
        "redis_minus_in_process_p50_ms": {"python_client": redis_extra_py, "wrk": redis_extra_wrk,
                                          "target": 0.3},
        "store_call_in_process_p50": direct,
        f"throughput_concurrency_{args.concurrency}": thr,
        "redis_vs_in_process_rps_ratio": round(thr["redis"]["requests_per_s"] / thr["in_process"]["requests_per_s"], 3),
        "scaling": {"one_replica": {**one, **one_cpu}, "two_replicas": two, "two_replicas_cpu": two_cpu,
                    "one_replica_rps": one["requests_per_s"], "two_replicas_rps": two_rps,
                    "ratio": round(two_rps / one["requests_per_s"], 3), "target": 1.8,
                    # requests per second of gateway CPU: what a replica costs, whatever the machine
                    "requests_per_gateway_cpu_s": {
                        "one_replica": round(one["completed"] / max(one_cpu["gateway_cpu_s"], 1e-9), 1),
                        "two_replicas": round(sum(r["completed"] for r in two) / max(two_cpu["gateway_cpu_s"], 1e-9),
                                              1)}},
    }
    save("stores", results)


if __name__ == "__main__":
    main()
