"""The same model (SmolLM2-135M-Instruct) through vLLM's CPU build and through llama.cpp, in one run.

Both servers are started by junto's Launcher (a private state directory), one at a time so they do
not compete for the cores, each from its shipped pool: ``embedded`` (llama.cpp, the Q4_1 GGUF) and
``vllm-cpu`` (vLLM, the same weights converted to safetensors, served in bf16). For each it records

* start-up: ``Launcher.up()`` wall time, process start to the first 200 on /v1/models;
* throughput: completion tokens per second of wall time at concurrency 1, 4 and 16 (distinct
  prompts, temperature 0.7, ``max_tokens`` fixed), sent through PoolClient. llama.cpp's server
  serves one request at a time (its pool says max_concurrency 1), so its concurrency only queues;
  vLLM batches the concurrent requests (continuous batching);
* k = 8 samples of one prompt, short (~20 tokens) and long (~790 tokens): one request with n = 8
  (vLLM's native path, the prompt prefilled once) against 8 separate requests sent at once; the
  wall-time ratio (separate / one) is the headline. For
  llama.cpp, which ignores n, the client's fan-out (8 requests) is timed for reference.

The weights differ in precision (Q4_1 for llama.cpp, bf16 for vLLM), so the token rates compare
the two servers as junto deploys them on this CPU, not kernels on equal numbers.
Needs the vLLM virtualenv and converted model: ``junto vllm install && junto models convert``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["prime numbers", "the sea", "paperclips", "boiling water", "cats", "the sky", "cooking", "libraries",
          "planets", "bicycles", "rain", "bread", "music", "trees", "trains", "the moon", "chess", "coffee",
          "bees", "mountains", "rivers", "clocks", "maps", "snow", "birds", "glass", "salt", "kites",
          "volcanoes", "bridges", "honey", "lamps"]
MAX_TOKENS = int(os.environ.get("BENCH_MAX_TOKENS", "48"))
LEVELS = (1, 4, 16)
REQUESTS = {1: 6, 4: 12, 16: 32}
K = 8
K_REPEATS = int(os.environ.get("BENCH_K_REPEATS", "3"))


def prompt(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Write two sentences about {TOPICS[i % len(TOPICS)]}."}]


async def throughput(client, dep: str, concurrency: int, n_requests: int, offset: int) -> dict:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int):
        async with sem:
            return await client.chat(dep, prompt(offset + i), max_tokens=MAX_TOKENS, temperature=0.7, seed=i)

    t0 = time.perf_counter()
    rs = await asyncio.gather(*(one(i) for i in range(n_requests)))
    wall = time.perf_counter() - t0
    tokens = sum(r.usage.completion_tokens for r in rs)
    return {"concurrency": concurrency, "requests": n_requests, "completion_tokens": tokens,
            "wall_s": round(wall, 3), "tokens_per_s": round(tokens / wall, 2),
            "mean_latency_s": round(statistics.fmean(r.latency_s for r in rs), 3)}


SHORT_Q = "Pick a random animal and describe it in one sentence."
#: a ~790-token prompt: prefill is then a real share of the work, which one n=8 request does once
LONG_Q = ("Read these notes, then answer the question at the end.\n"
          + "\n".join(f"Note {i}: the {t} exhibit opens at {8 + i % 10} o'clock and closes {i % 3 + 1} hours later."
                      for i, t in enumerate(TOPICS))
          + "\nQuestion: pick one exhibit and say when it opens, in one sentence.")


async def k_samples(client, dep: str, native: bool, question: str) -> dict:
    q = [{"role": "user", "content": question}]
    one_req, separate = [], []
    for rep in range(K_REPEATS):
        if native:
            r = await client.chat(dep, q, n=K, max_tokens=32, temperature=0.8, seed=100 + rep)
            assert r.path == "native-n" and r.requests == 1 and len(r.choices) == K, (r.path, r.requests)
            one_req.append((r.latency_s, r.usage.completion_tokens))
        t0 = time.perf_counter()
        rs = await asyncio.gather(*(client.chat(dep, q, max_tokens=32, temperature=0.8, seed=200 + rep * K + i)
                                    for i in range(K)))
        separate.append((time.perf_counter() - t0, sum(r.usage.completion_tokens for r in rs)))
    out = {"k": K, "repeats": K_REPEATS, "prompt_tokens": rs[0].usage.prompt_tokens,
           "separate_requests_wall_s": round(statistics.median(w for w, _ in separate), 3),
           "separate_requests_tokens": round(statistics.median(t for _, t in separate))}
    if native:
        out["one_n_request_wall_s"] = round(statistics.median(w for w, _ in one_req), 3)
        out["one_n_request_tokens"] = round(statistics.median(t for _, t in one_req))
        out["wall_ratio_separate_over_n"] = round(out["separate_requests_wall_s"] / out["one_n_request_wall_s"], 2)
    return out


async def measure(pool_ref: str, dep_name: str | None, state: Path, native: bool) -> dict:
    from junto.pool.client import PoolClient
    from junto.pool.config import load_pool
    from junto.pool.launcher import Launcher

    pool = load_pool(pool_ref)
    dep = pool.deployment(dep_name) if dep_name else pool.default_deployment
    launcher = Launcher(pool, state)
    t0 = time.perf_counter()
    endpoints, _ = launcher.up(progress=lambda m: print(f"  {m}", flush=True))
    startup = time.perf_counter() - t0
    try:
        async with PoolClient(pool, endpoints) as client:
            await client.chat(dep.name, prompt(0), max_tokens=8)  # warm-up (first-request compilation)
            levels = []
            for c in LEVELS:
                res = await throughput(client, dep.name, c, REQUESTS[c], offset=c)
                print(f"  {dep.name} concurrency {c}: {res['tokens_per_s']} tok/s", flush=True)
                levels.append(res)
            ks = {"short_prompt": await k_samples(client, dep.name, native, SHORT_Q),
                  "long_prompt": await k_samples(client, dep.name, native, LONG_Q)}
            print(f"  {dep.name} k={K}: {ks}", flush=True)
    finally:
        launcher.down()
    return {"deployment": dep.name, "backend": dep.backend, "startup_s": round(startup, 1),
            "max_concurrency": dep.max_concurrency, "throughput": levels, "k_samples": ks}


async def main() -> None:
    from junto.errors import JuntoError
    from junto.pool import convert, vllm_env

    try:
        py = vllm_env.resolve_python()
    except JuntoError as exc:
        sys.exit(f"{exc.message}\nhint: {exc.hint}")
    if not convert.is_converted("smollm2-135m-instruct"):
        sys.exit("the converted model is missing: run `junto models convert`")
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="junto-bench-vllm-") as tmp:
        print("llama.cpp (pool embedded):", flush=True)
        llama = await measure("embedded", None, Path(tmp), native=False)
        print("vLLM CPU (pool vllm-cpu):", flush=True)
        vllm = await measure(str(ROOT / "configs" / "pools" / "vllm-cpu.yaml"), None, Path(tmp), native=True)
    ratio = {str(a["concurrency"]): round(b["tokens_per_s"] / a["tokens_per_s"], 2)
             for a, b in zip(llama["throughput"], vllm["throughput"])}
    import subprocess

    version = subprocess.run([py, "-c", "import vllm; print(vllm.__version__)"], capture_output=True,
                             text=True).stdout.strip()
    save("vllm_vs_llamacpp", {
        "model": "SmolLM2-135M-Instruct (llama.cpp: Q4_1 GGUF; vLLM: bf16 safetensors converted from it)",
        "vllm_version": version, "max_tokens": MAX_TOKENS,
        "llamacpp": llama, "vllm": vllm,
        "vllm_over_llamacpp_tokens_per_s": ratio,
        "k8_wall_ratio_separate_over_n": {p: vllm["k_samples"][p]["wall_ratio_separate_over_n"]
                                          for p in ("short_prompt", "long_prompt")},
        "startup_s": {"llamacpp": llama["startup_s"], "vllm": vllm["startup_s"]},
        "total_s": round(time.perf_counter() - t_all, 1),
    })


if __name__ == "__main__":
    asyncio.run(main())
