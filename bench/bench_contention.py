"""64-token answers of the embedded model while another process keeps one core busy (issue 9: no CPU collapse).

llama.cpp's threads spin at a barrier after every operation: a server given every core collapses as
soon as another process takes one of them. This script starts the embedded model (SmolLM2-135M,
llama.cpp) with junto's Launcher (a private state directory), once with the thread count junto's
policy chooses (``launch.n_threads: auto``, :mod:`junto.pool.threads`) and once with as many threads
as the process may use, one server at a time, and times greedy (temperature 0) streamed answers of
``max_tokens = 64`` over raw HTTP, in two conditions each:

* idle: nothing else started by this script runs;
* loaded: a separate ``python -c 'while True: pass'``-style process keeps one core spinning (it ends
  itself after ``BENCH_BUSY_MAX_S`` seconds in any case, and is killed when the condition ends).

The all-cores server under load is capped (``BENCH_CAPPED`` requests, ``BENCH_TIMEOUT_S`` each): a
request still running at its deadline is abandoned and recorded as a timeout, with the tokens it
had streamed and the time 64 tokens would take at that rate. Per condition: p50/mean wall time per
answer, and the ratio loaded / idle. Target: the policy's loaded p50 ≤ 1.5 × its idle p50.
Distinct prompts in the same order for every condition (llama.cpp reuses the previous prompt's cache).

The machine may be shared: idle and loaded requests alternate in blocks of four, each block waits a
few seconds (``BENCH_QUIET_WAIT_S``) for other jobs to calm down, and each condition records
``background_cores_other_jobs``, the CPU (in cores) that processes other than the server, the busy
process and this script used meanwhile (from /proc), so a noisy run shows as one.

    python bench/bench_contention.py        # BENCH_REQUESTS=12 BENCH_CAPPED=3 BENCH_TIMEOUT_S=20
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import percentile, save  # noqa: E402

TOPICS = ["the sea", "a lighthouse", "a dragon", "a robot", "a library", "a mountain village", "a train journey",
          "a lost cat", "a baker", "a chess game", "a storm", "a garden", "a space station", "a river",
          "an old clock", "a market"]
MAX_TOKENS = 64
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "12"))
BLOCK = 4  # idle and loaded requests alternate in blocks of this many
CAPPED = int(os.environ.get("BENCH_CAPPED", "3"))
TIMEOUT_S = float(os.environ.get("BENCH_TIMEOUT_S", "20"))
BUSY_MAX_S = float(os.environ.get("BENCH_BUSY_MAX_S", "150"))
QUIET_WAIT_S = float(os.environ.get("BENCH_QUIET_WAIT_S", "6"))  # per block, for other jobs to calm down
QUIET_CORES = 0.25
TARGET = 1.5
DEP = "smollm2-135m"


def prompt(i: int) -> str:
    return f"Write a long story about {TOPICS[i % len(TOPICS)]}."


def answer(http, url: str, text: str, timeout_s: float) -> dict:
    """One streamed greedy answer; abandoned at ``timeout_s`` (then ``timed_out``)."""
    body = {"model": DEP, "messages": [{"role": "user", "content": text}], "stream": True,
            "max_tokens": MAX_TOKENS, "temperature": 0}
    t0 = time.perf_counter()
    ttft, n, timed_out = None, 0, False
    try:
        with http.stream("POST", f"{url}/chat/completions", json=body, timeout=timeout_s) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    delta = (json.loads(line[5:])["choices"] or [{}])[0].get("delta", {}).get("content")
                    if delta:
                        ttft = ttft or time.perf_counter() - t0
                        n += 1
                if time.perf_counter() - t0 > timeout_s:
                    timed_out = True
                    break
    except Exception as exc:  # httpx.TimeoutException and friends: the deadline passed between chunks
        import httpx

        if not isinstance(exc, httpx.TimeoutException):
            raise
        timed_out = True
    return {"s": time.perf_counter() - t0, "ttft_s": ttft, "chunks": n, "timed_out": timed_out}


def busy_process() -> subprocess.Popen:
    code = f"import time\nend = time.monotonic() + {BUSY_MAX_S}\nwhile time.monotonic() < end: pass\n"
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


# -- how busy the rest of the machine was (it is shared): CPU time not spent by the server, the busy
# process or this script, in cores, from /proc (None elsewhere) ---------------------------------
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy_ticks() -> int | None:
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return f[0] + f[1] + f[2] + f[5] + f[6]  # user nice system irq softirq (not idle, iowait, steal)


def process_ticks(pid: int) -> int:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(f[11]) + int(f[12])  # utime stime (all threads)


class Background:
    """CPU cores used by everything except ``pids`` between construction and :meth:`cores`."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.t0, self.m0 = time.perf_counter(), machine_busy_ticks()
        self.p0 = {p: process_ticks(p) for p in pids}

    def cores(self, extra_ticks: int = 0) -> float | None:
        m1 = machine_busy_ticks()
        if m1 is None or self.m0 is None:
            return None
        ours = sum(process_ticks(p) - t for p, t in self.p0.items()) + extra_ticks
        return max(0.0, (m1 - self.m0 - ours) / TICK / (time.perf_counter() - self.t0))


def wait_for_quiet(server_pid: int) -> float | None:
    """Wait (up to QUIET_WAIT_S) until the rest of the machine uses under QUIET_CORES; the last reading."""
    deadline = time.monotonic() + QUIET_WAIT_S
    while True:
        bg = Background([server_pid, os.getpid()])
        time.sleep(1.0)
        level = bg.cores()
        if level is None or level < QUIET_CORES or time.monotonic() >= deadline:
            return level


def block(http, url: str, server_pid: int, indices: list[int], timeout_s: float, loaded: bool) -> dict:
    """Requests for prompts ``indices`` in one condition, with the background load measured meanwhile."""
    quiet = wait_for_quiet(server_pid)
    busy = busy_process() if loaded else None
    bg = Background([server_pid, os.getpid()] + ([busy.pid] if busy else []))
    try:
        if busy is not None:
            time.sleep(0.5)  # let it take its core
        runs = [answer(http, url, prompt(i), timeout_s) for i in indices]
        background = bg.cores()
        busy_alive = busy is None or busy.poll() is None
    finally:
        if busy is not None:
            stop(busy)
    return {"runs": runs, "background_cores": background, "quiet_before": quiet, "busy_alive": busy_alive,
            "wall_s": time.perf_counter() - bg.t0}


def summarize(blocks: list[dict], timeout_s: float, loaded: bool) -> dict:
    runs = [r for b in blocks for r in b["runs"]]
    all_s = [r["s"] for r in runs]  # a timeout counts as its (lower-bound) wall time
    timeouts = [r for r in runs if r["timed_out"]]
    ttfts = [r["ttft_s"] for r in runs if r["ttft_s"]]
    bgs = [(b["background_cores"], b["wall_s"]) for b in blocks if b["background_cores"] is not None]
    out = {
        "requests": len(runs), "completed": len(runs) - len(timeouts), "timeouts": len(timeouts),
        "p50_ms": round(percentile(all_s, 50) * 1000, 1), "mean_ms": round(statistics.fmean(all_s) * 1000, 1),
        "min_ms": round(min(all_s) * 1000, 1), "max_ms": round(max(all_s) * 1000, 1),
        "p50_is_lower_bound": bool(timeouts),
        "ttft_p50_ms": round(percentile(ttfts, 50) * 1000, 1) if ttfts else None,
        "chunks_mean": round(statistics.fmean(r["chunks"] for r in runs), 1),
        "background_cores_other_jobs": round(sum(c * w for c, w in bgs) / sum(w for _, w in bgs), 2) if bgs else None,
    }
    if timeouts:
        out["per_request_timeout_s"] = timeout_s
        out["timed_out_requests"] = [
            {"abandoned_after_s": round(r["s"], 1), "chunks_streamed": r["chunks"],
             "projected_64_token_s": round(r["s"] * MAX_TOKENS / r["chunks"], 1) if r["chunks"] else None}
            for r in timeouts]
    if loaded:
        out["busy_process_ran_throughout"] = all(b["busy_alive"] for b in blocks)
    return out


def run_server(threads: int, state: Path, n_idle: int, n_loaded: int, timeout_s: float) -> dict:
    """Start a server with ``threads``; idle and loaded requests in alternating blocks (fair to drifting load)."""
    import httpx

    from junto.pool.config import parse_pool
    from junto.pool.launcher import Launcher

    pool = parse_pool({"name": f"contention-{threads}", "deployments": [{
        "name": DEP, "backend": "llamacpp", "model": "embedded:smollm2-135m-instruct", "context_length": 2048,
        "max_concurrency": 1, "launch": {"n_threads": threads, "startup_timeout_s": 120}}]})
    launcher = Launcher(pool, state)
    t0 = time.perf_counter()
    endpoints, _ = launcher.up()
    startup = time.perf_counter() - t0
    url, pid = endpoints[DEP], launcher.records()[DEP].pid
    blocks: dict[str, list[dict]] = {"idle": [], "loaded": []}
    try:
        with httpx.Client() as http:
            answer(http, url, "Say hello.", 60)  # warm-up, not counted
            done = {"idle": 0, "loaded": 0}
            wanted = {"idle": n_idle, "loaded": n_loaded}
            while done != wanted:
                for label in ("idle", "loaded"):
                    k = min(BLOCK, wanted[label] - done[label])
                    if k <= 0:
                        continue
                    b = block(http, url, pid, list(range(done[label], done[label] + k)), timeout_s, label == "loaded")
                    blocks[label].append(b)
                    done[label] += k
                    print(f"threads={threads} {label} {done[label]}/{wanted[label]}: "
                          f"{[round(r['s'], 2) for r in b['runs']]} s, other jobs {b['background_cores'] if b['background_cores'] is None else round(b['background_cores'], 2)} cores",
                          flush=True)
    finally:
        launcher.down()
    res = {"n_threads": threads, "server_startup_s": round(startup, 2),
           "idle": summarize(blocks["idle"], timeout_s, False), "loaded": summarize(blocks["loaded"], timeout_s, True)}
    res["loaded_over_idle_p50"] = ratio(res["loaded"], res["idle"], "p50_ms")
    res["loaded_over_idle_mean"] = ratio(res["loaded"], res["idle"], "mean_ms")
    if res["loaded"]["timeouts"]:
        res["ratio_is_lower_bound"] = True
    return res


def ratio(loaded: dict, idle: dict, key: str) -> float:
    return round(loaded[key] / idle[key], 2)


def main() -> None:
    from junto.pool.config import load_pool
    from junto.pool.threads import available_cores, pool_thread_plan, reserve_cores

    cores = available_cores()
    policy = pool_thread_plan(load_pool("embedded").deployments, cores)[DEP]
    load_before = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    t_start = time.perf_counter()
    out: dict = {
        "model": "SmolLM2-135M-Instruct Q4_1 (llama-cpp-python server), greedy, streamed, max_tokens 64",
        "cores_usable_by_process": cores, "reserve_cores": reserve_cores(cores),
        "busy_process": "python spinning one core (ends itself after "
                        f"{BUSY_MAX_S:.0f}s; killed at the end of each loaded condition)",
        "target": f"policy loaded p50 <= {TARGET} x idle p50",
    }
    with tempfile.TemporaryDirectory() as state:
        out["policy"] = run_server(policy, Path(state), REQUESTS, REQUESTS, TIMEOUT_S)
        capped = cores != policy
        out["all_cores"] = run_server(cores, Path(state), REQUESTS, CAPPED if capped else REQUESTS, TIMEOUT_S)
    out["policy_target_met"] = out["policy"]["loaded_over_idle_p50"] <= TARGET
    out["all_cores_loaded_over_policy_loaded_p50"] = ratio(out["all_cores"]["loaded"], out["policy"]["loaded"],
                                                           "p50_ms")
    out["wall_s"] = round(time.perf_counter() - t_start, 1)
    out["loadavg_before"] = load_before
    out["notes"] = ("The machine may be shared with other jobs: see background_cores_other_jobs per condition "
                    "('idle' means no busy process of this script, not an idle machine). Timed-out requests count "
                    "at their abandon time, so such figures and ratios are lower bounds.")
    save("contention", out)


if __name__ == "__main__":
    main()
