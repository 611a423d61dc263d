"""The gateway's added latency and sustained throughput, beside LiteLLM's proxy, against one stub.

A fast OpenAI-compatible stub (bench/stub_server.py) runs as a real process on loopback. In the
same run, against the same stub:

* direct:  requests straight to the stub (the floor)
* junto:   `junto serve`, model ``junto-auto`` (routing included: a router artifact when one is
           given with --router, else the pool's order), one uvicorn worker
* litellm: LiteLLM's proxy (``litellm[proxy]`` pinned, run from its own virtualenv) configured as
           a plain pass-through with a strong master key, one worker

Latency: sequential non-streamed requests (concurrency 1), interleaved across the three targets,
p50/p99 and the added ms over direct (aiohttp client in this process). Throughput: wrk (C, from
Debian's package; `apt-get install wrk`) holding C connections open for a fixed time per target,
requests/s completed with 200; without wrk, an asyncio aiohttp closed loop in this process, which
saturates long before the stub does and is reported as such.

    python bench/bench_gateway.py [--proxy-python .venv-litellm-proxy/bin/python] [--router DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from common import save, summary_ms  # noqa: E402
from helpers import free_port, stub_server, wait_http  # noqa: E402

MSG = [{"role": "user", "content": "hello there"}]


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, env={**os.environ, **env},
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def latency(targets: dict[str, tuple[str, str, dict]], rounds: int) -> dict[str, list[float]]:
    import aiohttp

    times: dict[str, list[float]] = {k: [] for k in targets}
    async with aiohttp.ClientSession() as client:
        for i in range(rounds + 50):
            for name, (url, model, headers) in targets.items():
                t0 = time.perf_counter()
                async with client.post(f"{url}/chat/completions", json={"model": model, "messages": MSG},
                                       headers=headers) as r:
                    body = await r.read()
                dt = time.perf_counter() - t0
                assert r.status == 200, (name, r.status, body[:200])
                if i >= 50:
                    times[name].append(dt)
    return times


WRK_LUA = """
wrk.method = "POST"
wrk.body = '{"model": "%s", "messages": [{"role": "user", "content": "hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
%s
"""


def wrk_throughput(url: str, model: str, headers: dict, concurrency: int, seconds: float, tmp: Path) -> dict:
    script = tmp / f"wrk-{model}-{concurrency}.lua"
    auth = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    script.write_text(WRK_LUA % (model, auth))
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--latency", "-s", str(script),
                          f"{url}/chat/completions"], capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec:")))
    total = int(next(line.split()[0] for line in out.splitlines() if "requests in" in line))
    non2xx = next((int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line), 0)
    errors = next((line.strip() for line in out.splitlines() if line.strip().startswith("Socket errors")), "")
    def pct(label: str) -> float:
        value = next(line.split()[1] for line in out.splitlines() if line.strip().startswith(label))
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
        unit = value.lstrip("0123456789.")
        return round(float(value[: len(value) - len(unit)]) * scale[unit], 4)

    return {"requests_per_s": round(rps * (total - non2xx) / max(total, 1), 1), "completed": total - non2xx,
            "non_2xx": non2xx, "socket_errors": errors, "seconds": seconds, "concurrency": concurrency,
            "latency_p50_ms": pct("50%"), "latency_p99_ms": pct("99%"), "load_generator": "wrk -t1 --latency"}


async def aio_throughput(url: str, model: str, headers: dict, concurrency: int, seconds: float) -> dict:
    import aiohttp

    done = errors = 0
    stop_at = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as client:
        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < stop_at:
                try:
                    async with client.post(f"{url}/chat/completions", json={"model": model, "messages": MSG},
                                           headers=headers) as r:
                        await r.read()
                        done, errors = (done + 1, errors) if r.status == 200 else (done, errors + 1)
                except aiohttp.ClientError:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"requests_per_s": round(done / elapsed, 1), "completed": done, "errors": errors,
            "seconds": round(elapsed, 2), "concurrency": concurrency, "load_generator": "aiohttp (in-process)"}


def throughput(url: str, model: str, headers: dict, concurrency: int, seconds: float, tmp: Path) -> dict:
    if shutil.which("wrk"):
        return wrk_throughput(url, model, headers, concurrency, seconds, tmp)
    return asyncio.run(aio_throughput(url, model, headers, concurrency, seconds))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy-python", default=str(HERE.parent / ".venv-litellm-proxy" / "bin" / "python"))
    ap.add_argument("--router", default=None,
                    help="router artifact for junto-auto; default: fit Avengers (static embedder) on the shared data")
    ap.add_argument("--no-router", action="store_true", help="junto-auto routes by pool order only")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "1000")))
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="junto-bench-gw-"))
    procs: list[subprocess.Popen] = []
    data = Path(os.environ.get("JUNTO_ROUTING_DATA", HERE.parents[1] / "shared" / "data" / "routing"))
    router_desc = args.router or "pool order (no router)"
    if args.router is None and not args.no_router and (data / "routing_train.json").exists():
        router_desc = "avengers, static embedder, fitted on the shared routing data (9 deployments)"
        args.router = str(tmp / "router")
        subprocess.run([sys.executable, "-m", "junto.cli", "route", "fit", "--records", str(data / "routing_train.json"),
                        "--method", "avengers", "--embedder", "static", "--out", args.router], check=True,
                        capture_output=True)
    with stub_server(tokens=8) as (stub, _):
        # junto: a pool whose deployments all point at the stub; with --router, named as the router's models
        names = ["stub"]
        if args.router:
            from junto.routers import load_router

            names = list(load_router(args.router).models)
        pool = {"name": "bench", "deployments": [{"name": n, "backend": "openai", "model": "stub", "url": stub,
                                                  "max_concurrency": 4096} for n in names]}
        cfg = {"pool": pool, "router": args.router, "gateway": {"api_keys_env": None}}
        (tmp / "junto.yaml").write_text(yaml.safe_dump(cfg))
        jport = free_port()
        procs.append(start([sys.executable, "-m", "junto.cli", "serve", "--config", str(tmp / "junto.yaml"),
                            "--port", str(jport)], {}, tmp / "junto.log"))
        wait_http(f"http://127.0.0.1:{jport}/healthz", 120, procs[-1])
        targets = {"direct": (stub, "stub", {}), "junto": (f"http://127.0.0.1:{jport}/v1", "junto-auto", {})}

        have_proxy = Path(args.proxy_python).exists()
        if have_proxy:
            master = "sk-" + secrets.token_urlsafe(32)
            (tmp / "litellm.yaml").write_text(yaml.safe_dump({
                "model_list": [{"model_name": "stub", "litellm_params": {"model": "openai/stub", "api_base": stub,
                                                                         "api_key": "unused"}}],
                "general_settings": {"master_key": master},
                "litellm_settings": {"telemetry": False, "drop_params": True},
            }))
            lport = free_port()
            procs.append(start([args.proxy_python, "-m", "litellm.proxy.proxy_cli", "--config", str(tmp / "litellm.yaml"),
                                "--host", "127.0.0.1", "--port", str(lport), "--num_workers", "1"],
                               {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}, tmp / "litellm.log"))
            wait_http(f"http://127.0.0.1:{lport}/health/liveliness", 300, procs[-1])
            targets["litellm_proxy"] = (f"http://127.0.0.1:{lport}/v1", "stub", {"authorization": f"Bearer {master}"})
        try:
            lat = asyncio.run(latency(targets, args.rounds))
            thr = {name: throughput(url, model, hdr, args.concurrency, args.seconds, tmp)
                   for name, (url, model, hdr) in targets.items()}
            # concurrency 1 throughput too: the per-request cost without queueing
            thr1 = {name: throughput(url, model, hdr, 1, args.seconds / 2, tmp)
                    for name, (url, model, hdr) in targets.items()}
        finally:
            for p in procs:
                stop(p)
    base = statistics.median(lat["direct"])
    results: dict = {"stub": "bench/stub_server.py on loopback, 8-token answers", "router": router_desc,
                     "latency_concurrency_1_python_client": {}, f"throughput_concurrency_{args.concurrency}": thr,
                     "concurrency_1": thr1}
    for name, v in lat.items():
        s = summary_ms(v)
        s["added_ms_p50_vs_direct"] = round((statistics.median(v) - base) * 1000, 3)
        results["latency_concurrency_1_python_client"][name] = s
    if "latency_p50_ms" in thr1["direct"]:  # wrk: the tighter measurement of added latency
        results["added_latency_ms"] = {
            name: {"p50": round(v["latency_p50_ms"] - thr1["direct"]["latency_p50_ms"], 4),
                   "p99": round(v["latency_p99_ms"] - thr1["direct"]["latency_p99_ms"], 4)}
            for name, v in thr1.items() if name != "direct"}
    if "litellm_proxy" in thr:
        results["junto_vs_litellm_rps_ratio"] = round(thr["junto"]["requests_per_s"] / max(thr["litellm_proxy"]["requests_per_s"], 1e-9), 2)
    else:
        results["litellm_proxy"] = f"not run: {args.proxy_python} missing (python -m venv .venv-litellm-proxy && " \
                                   f".venv-litellm-proxy/bin/pip install 'litellm[proxy]==1.106.2')"
    save("gateway", results)


if __name__ == "__main__":
    main()
