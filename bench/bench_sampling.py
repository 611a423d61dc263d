"""Batched sampling on CPU: llama-cpp-python's server, llama.cpp's llama-server and vLLM's CPU build, side by side.

One model (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF; vLLM serves the same weights converted to
safetensors), each server started by junto's Launcher (a private state directory) with the pool's
thread policy (``launch.n_threads: auto``, :mod:`junto.pool.threads`), one server at a time, and
called through junto's PoolClient:

* ``llama-cpp-python``: ``launch.server: llama-cpp-python`` (serial: one request at a time);
* ``llama-server``: ``launch.server: llama-server``, 8 slots (``max_concurrency: 8`` → ``-np 8``),
  continuous batching;
* ``vllm-cpu``: ``backend: vllm`` (``max_num_seqs: 8``, bf16), when ``junto vllm install`` has run
  (``BENCH_VLLM=0`` leaves it out; the model is converted on first use).

Measured, ``BENCH_REPEATS`` times each (medians reported), every answer exactly ``BENCH_TOKENS``
(128) tokens where the server can force it (``ignore_eos`` on llama-server and vLLM,
``min_tokens`` on all three; the counts actually generated are recorded, with tokens/s):

* concurrency 1, 4 and 8: that many requests at once (distinct prompts, T = 0.7); wall time,
  completion tokens/s, and the wall time over one request's;
* the target: k = 8 samples of one prompt (T = 0.7), as junto's ``sc`` asks for them
  (``PoolClient.chat(n=8)``: one ``n = 8`` request on llama-server (up to its slots, every choice's
  tokens counted from their logprobs) and on vLLM, 8 concurrent requests on llama-cpp-python's server),
  divided by one greedy answer of the same length. Target: ≤ 3× on 2 cores. For llama-server,
  one raw ``n = 8`` request is timed for reference.

The machine may be shared: every measurement records ``background_cores_other_jobs``, the CPU (in
cores) that processes other than the server and this script used meanwhile (bench_contention's
/proc reading), so a noisy run shows as one.

    python bench/bench_sampling.py     # BENCH_MODEL=qwen2.5-coder-0.5b BENCH_REPEATS=3 BENCH_TOKENS=128 BENCH_VLLM=1
    BENCH_SERVERS=llama-server:2 python bench/bench_sampling.py   # one more row (here: 2 threads), merged
                                                                  # into the last run's JSON
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
from bench_contention import Background
from common import save

MODEL = os.environ.get("BENCH_MODEL", "qwen2.5-coder-0.5b")
FALLBACK_MODEL = "smollm2-135m-instruct"
TOKENS = int(os.environ.get("BENCH_TOKENS", "128"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
LEVELS = (1, 4, 8)
K = 8
SLOTS = 8
TARGET = 3.0
TOPICS = ["binary search", "a linked list", "quicksort", "a hash map", "string reversal", "prime sieves",
          "matrix multiplication", "a stack", "a queue", "depth-first search", "breadth-first search", "merge sort",
          "a trie", "Fibonacci numbers", "a LRU cache", "regular expressions", "JSON parsing", "file reading",
          "a binary tree", "dynamic programming", "bit manipulation", "a heap", "graph cycles", "string formatting"]
SAMPLE_Q = "A farmer has 17 sheep and buys 25 more, then sells 9. How many sheep are left? Think step by step."


def prompt(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Explain {TOPICS[i % len(TOPICS)]} and write a Python example."}]


def force_length(server: str) -> dict:
    """Request fields that make every answer TOKENS long where the server allows it."""
    if server == "llama-cpp-python":
        return {"min_tokens": TOKENS}  # it suppresses the EOS token until then (its only lever)
    return {"ignore_eos": True, "min_tokens": TOKENS}


def pool_spec(server: str, model_key: str, threads: int | str = "auto") -> dict:
    if server == "vllm-cpu":
        dep = {"name": "bench", "backend": "vllm", "model": f"embedded-hf:{model_key}", "context_length": 2048,
               "max_concurrency": SLOTS, "timeout_s": 900,
               "launch": {"dtype": "bfloat16", "max_num_seqs": SLOTS, "enable_prefix_caching": True,
                          "cpu_kvcache_space_gib": 1, "cpu_threads_bind": "nobind", "startup_timeout_s": 900}}
    else:
        dep = {"name": "bench", "backend": "llamacpp", "model": f"embedded:{model_key}", "context_length": 2048,
               "max_concurrency": SLOTS, "timeout_s": 900,
               "launch": {"server": server, "n_threads": threads, "startup_timeout_s": 300}}
    return {"name": f"bench-sampling-{server}", "deployments": [dep]}


def server_pids(rec) -> list[int]:
    from junto.pool.launcher import group_members

    return sorted(set(group_members(rec.pid)) | {rec.pid}) if rec.pid else []


async def timed(coro_factory, pids: list[int]) -> tuple[float, object, float | None]:
    bg = Background(pids + [os.getpid()])
    t0 = time.perf_counter()
    out = await coro_factory()
    wall = time.perf_counter() - t0
    return wall, out, bg.cores()


def median(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


async def measure(server: str, model_key: str, state: Path, threads: int | str = "auto") -> dict:
    import httpx
    from junto.pool.client import PoolClient
    from junto.pool.config import parse_pool
    from junto.pool.launcher import Launcher
    from junto.pool.threads import argv_threads, available_cores

    pool = parse_pool(pool_spec(server, model_key, threads))
    launcher = Launcher(pool, state)
    t0 = time.perf_counter()
    endpoints, _ = launcher.up(progress=lambda m: print(f"  {m}", flush=True))
    startup = time.perf_counter() - t0
    rec = launcher.records()["bench"]
    pids = server_pids(rec)
    extra = force_length(server)
    url = endpoints["bench"]
    argv = rec.argv
    threads_setting = threads
    threads = argv_threads(argv)
    if threads is None and "--threads" in argv:
        threads = int(argv[argv.index("--threads") + 1])
    levels: dict[int, list[dict]] = {c: [] for c in LEVELS}
    greedy, samples, raw_n = [], [], []
    try:
        async with PoolClient(pool, endpoints) as client:
            await client.chat("bench", prompt(0), max_tokens=8)  # warm-up
            await asyncio.gather(*(client.chat("bench", prompt(i), max_tokens=8) for i in range(4)))
            offset = 100
            for rep in range(REPEATS):
                for c in LEVELS:
                    offset += c

                    async def level(c=c, offset=offset):
                        return await asyncio.gather(*(
                            client.chat("bench", prompt(offset + i), max_tokens=TOKENS, temperature=0.7,
                                        seed=offset + i, extra=extra) for i in range(c)))

                    wall, rs, bgc = await timed(level, pids)
                    toks = [r.usage.completion_tokens for r in rs]
                    levels[c].append({"wall_s": wall, "tokens": toks, "background_cores": bgc})
                    print(f"  {server} rep {rep} concurrency {c}: {wall:.2f}s, {sum(toks) / wall:.1f} tok/s "
                          f"(other load {bgc if bgc is None else round(bgc, 2)} cores)", flush=True)
                q = [{"role": "user", "content": f"{SAMPLE_Q} (case {rep})"}]
                wall, r1, bgc = await timed(lambda q=q: client.chat(
                    "bench", q, max_tokens=TOKENS, temperature=0, extra=extra), pids)
                greedy.append({"wall_s": wall, "tokens": r1.usage.completion_tokens, "background_cores": bgc})
                q = [{"role": "user", "content": f"{SAMPLE_Q} (sample set {rep})"}]
                wall, rk, bgc = await timed(lambda q=q, rep=rep: client.chat(
                    "bench", q, n=K, max_tokens=TOKENS, temperature=0.7, seed=1000 * rep, extra=extra), pids)
                samples.append({"wall_s": wall, "tokens": rk.usage.completion_tokens, "choices": len(rk.choices),
                                "path": rk.path, "requests": rk.requests, "background_cores": bgc})
                print(f"  {server} rep {rep}: greedy {greedy[-1]['wall_s']:.2f}s, k={K} samples {wall:.2f}s "
                      f"({rk.path}) -> {wall / greedy[-1]['wall_s']:.2f}x", flush=True)
                if server == "llama-server":
                    body = {"model": "bench", "messages": [{"role": "user", "content": f"{SAMPLE_Q} (n set {rep})"}],
                            "n": K, "max_tokens": TOKENS, "temperature": 0.7, "seed": 7 + rep, **extra}
                    async with httpx.AsyncClient(timeout=900) as http:
                        async def one_n(body=body):
                            r = await http.post(f"{url}/chat/completions", json=body)
                            r.raise_for_status()
                            return r.json()
                        wall, data, bgc = await timed(one_n, pids)
                    raw_n.append({"wall_s": wall, "choices": len(data["choices"]), "background_cores": bgc})
    finally:
        launcher.down()

    def level_summary(c: int) -> dict:
        runs = levels[c]
        walls = [r["wall_s"] for r in runs]
        toks = [sum(r["tokens"]) for r in runs]
        return {"concurrency": c, "requests": c, "wall_s_median": median(walls), "wall_s_runs": [round(w, 3) for w in walls],
                "completion_tokens_per_request": sorted({t for r in runs for t in r["tokens"]}),
                "tokens_per_s_median": median([t / w for t, w in zip(toks, walls)]),
                "background_cores_other_jobs": median([r["background_cores"] for r in runs])}

    out_levels = [level_summary(c) for c in LEVELS]
    one = out_levels[0]["wall_s_median"]
    for lv in out_levels:
        lv["wall_over_one_request"] = round(lv["wall_s_median"] / one, 2) if one else None
    g, s = median([x["wall_s"] for x in greedy]), median([x["wall_s"] for x in samples])
    result = {
        "server": server, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "startup_s": round(startup, 1), "slots": SLOTS,
        "threads": threads if server != "vllm-cpu" else f"torch/OpenMP: all {available_cores()} cores (nobind)",
        "threads_from": "the pool policy (n_threads: auto)" if threads_setting == "auto" else "n_threads in the pool",
        "argv": [a if not a.endswith(".gguf") else Path(a).name for a in argv],
        "levels": out_levels,
        "k8_sampling": {
            "greedy_one_answer_s": g, "greedy_runs_s": [round(x["wall_s"], 3) for x in greedy],
            "greedy_tokens": sorted({x["tokens"] for x in greedy}),
            "k8_samples_s": s, "k8_runs_s": [round(x["wall_s"], 3) for x in samples],
            "k8_tokens": sorted({x["tokens"] for x in samples}), "path": samples[0]["path"],
            "requests": samples[0]["requests"],
            "ratio_k8_over_greedy": round(s / g, 2) if g else None,
            "ratio_runs": [round(b["wall_s"] / a["wall_s"], 2) for a, b in zip(greedy, samples)],
            "background_cores_other_jobs": median([x["background_cores"] for x in greedy + samples]),
        },
    }
    if raw_n:
        result["k8_sampling"]["one_raw_n8_request_s"] = median([x["wall_s"] for x in raw_n])
        result["k8_sampling"]["one_raw_n8_request_runs_s"] = [round(x["wall_s"], 3) for x in raw_n]
        result["k8_sampling"]["one_raw_n8_request_choices"] = raw_n[0]["choices"]
    return result


def vllm_ready(model_key: str) -> str | None:
    """None when vLLM can run here, else why not."""
    if os.environ.get("BENCH_VLLM", "1") == "0":
        return "left out (BENCH_VLLM=0)"
    from junto.errors import JuntoError
    from junto.pool import vllm_env

    try:
        vllm_env.resolve_python()
    except JuntoError as exc:
        return f"{exc.message} ({exc.hint})"
    return None


async def main() -> None:
    from junto.errors import JuntoError
    from junto.pool import models

    model_key = MODEL
    note = None
    try:
        cached = models.is_cached(model_key)
    except JuntoError as exc:  # unknown catalog name
        cached, note = False, f"{model_key}: {exc}"
    if not cached:
        note = note or f"{model_key} is not in junto's model cache (junto models pull {model_key})"
        print(f"{note}; falling back to {FALLBACK_MODEL}", flush=True)
        model_key = FALLBACK_MODEL
    wanted = [x.strip() for x in os.environ.get("BENCH_SERVERS", "").split(",") if x.strip()]
    servers = wanted or ["llama-cpp-python", "llama-server", "vllm-cpu"]
    why_not_vllm = vllm_ready(model_key) if "vllm-cpu" in servers else None
    if why_not_vllm is not None:
        servers.remove("vllm-cpu")
        print(f"vLLM CPU: {why_not_vllm}", flush=True)
    t_all = time.perf_counter()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="junto-bench-sampling-") as tmp:
        for entry in servers:
            server, _, threads = entry.partition(":")  # "llama-server:2": that server with 2 threads
            label = f"{server} ({threads} threads)" if threads else server
            print(f"{label}:", flush=True)
            try:
                results[label] = await measure(server, model_key, Path(tmp), int(threads) if threads else "auto")
            except Exception as exc:  # vLLM may fail to start on this CPU: record why, keep the others
                if server != "vllm-cpu":
                    raise
                results[label] = {"server": server, "error": f"{exc.__class__.__name__}: {exc}"[:2000]}
                print(f"  {label} failed: {exc}", flush=True)
    previous = _previous(model_key) if wanted else {}
    if previous:  # BENCH_SERVERS re-measures some servers: keep the others' figures from the last full run
        results = {**previous.get("servers", {}), **results}
        why_not_vllm = why_not_vllm or previous.get("vllm_skipped")
    ratios = {s: r["k8_sampling"]["ratio_k8_over_greedy"] for s, r in results.items() if "k8_sampling" in r}
    tps8 = {s: r["levels"][-1]["tokens_per_s_median"] for s, r in results.items() if "levels" in r}
    llama = {s: tps8[s] for s in ("llama-cpp-python", "llama-server") if s in tps8}
    best_llama = max(llama, key=llama.get) if llama else None
    from importlib import metadata

    save("sampling", {
        "model": model_key, "model_note": note,
        "tokens_per_answer": TOKENS, "repeats": REPEATS, "levels": list(LEVELS), "k": K, "slots": SLOTS,
        "target": {"metric": f"wall time of {K} samples of {TOKENS} tokens (T=0.7) / one greedy answer of {TOKENS} tokens",
                   "max_ratio": TARGET, "ratio": ratios, "met": {s: r is not None and r <= TARGET for s, r in ratios.items()}},
        "tokens_per_s_at_concurrency_8": tps8,
        "default_llamacpp_server": best_llama,
        "servers": results,
        "vllm_skipped": why_not_vllm,
        "llama_server_build": _build_info(),
        "llama_cpp_python": metadata.version("llama-cpp-python") if _has("llama-cpp-python") else None,
        "total_s": round(time.perf_counter() - t_all + (previous.get("total_s") or 0), 1),
        **({"merged_with_previous_run": sorted(previous.get("servers", {}))} if previous else {}),
    })


def _previous(model_key: str) -> dict:
    """The last saved results for the same model and answer length, to merge a partial run into."""
    import json

    from common import RESULTS

    try:
        old = json.loads((RESULTS / "sampling.json").read_text())["results"]
    except (OSError, ValueError, KeyError):
        return {}
    same = old.get("model") == model_key and old.get("tokens_per_answer") == TOKENS
    return old if same else {}


def _has(dist: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


def _build_info() -> dict | None:
    from junto.errors import JuntoError
    from junto.pool import llamaserver_build as lsb

    try:
        binary = lsb.find_binary()
    except JuntoError:
        return None
    info = lsb.installed_info(binary) or {}
    return {k: info.get(k) for k in ("version", "server_version", "cmake_args", "jobs", "seconds")}


def _stop_on_sigterm() -> None:
    """A SIGTERM (``timeout``, a CI runner) unwinds like Ctrl-C, so the server under test is stopped too."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    _stop_on_sigterm()
    asyncio.run(main())
