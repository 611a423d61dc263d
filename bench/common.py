"""The benchmark convention: one script per benchmark, each saving JSON to bench/results/<name>.json.

Every result file carries the machine it ran on (CPU model, cores, memory, OS, Python, key package
versions) and the command that produced it. ``python bench/run_all.py`` runs every benchmark.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("junto", "httpx", "langgraph", "litellm", "llama-cpp-python", "sentence-transformers", "faiss-cpu",
            "scikit-learn", "model2vec", "torch", "fastapi", "uvicorn", "openai")


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "gpu": None,
        "packages": versions,
    }


def percentile(values: list[float], p: float) -> float:
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary_ms(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 4), "p99_ms": round(percentile(ms, 99), 4),
            "mean_ms": round(statistics.fmean(ms), 4) if ms else None}


def save(name: str, results: dict) -> Path:
    """Write bench/results/<name>.json with the machine and command, and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=RESULTS.parent).stdout.strip() or None
    except OSError:
        commit = None
    doc = {"benchmark": name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "command": " ".join([Path(sys.executable).name, *sys.argv]), "commit": commit,
           "machine": machine(), "results": results}
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
    print(json.dumps(results, indent=2))
    print(f"saved {path}")
    return path


# -- shared by the benchmarks that run the local pool's models (bench_thinking, bench_ets, bench_scorers, bench_xolver)


@contextmanager
def local_pool(names: list[str], default: str, state: Path | None = None):
    """The local pool cut down to ``names``, its servers up: yields ``(pool, endpoints)``. Only the servers this
    call started are stopped at the end (servers of the same state directory that were running are reused).
    ``state``: the Launcher's state directory (default: ``JUNTO_STATE_DIR`` or the user's)."""
    from junto.pool.config import load_pool
    from junto.pool.launcher import Launcher

    full = load_pool("local")
    pool = full.model_copy(update={"deployments": [full.deployment(n) for n in names], "arms": [], "router": None,
                                   "default": default})
    launcher = Launcher(pool, state)
    t0 = time.perf_counter()
    endpoints, started = launcher.up(progress=lambda m: print(f"  {m}", flush=True))
    print(f"pool up in {time.perf_counter() - t0:.1f}s (started: {started or 'none, reused'})", flush=True)
    try:
        yield pool, endpoints
    finally:
        launcher.down(started)


# -- shared by the resumable GSM8K strategy benchmarks (bench_thinking, bench_ets) -------------------------
GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"


def gsm8k_subset(n: int, seed: int) -> list[tuple[int, dict]]:
    """``n`` seeded GSM8K train rows as (0-based line, row); a larger ``n`` extends a smaller one's list."""
    import random

    rows = [json.loads(line) for line in GSM8K.read_text().splitlines() if line.strip()]
    idx = random.Random(seed).sample(range(len(rows)), n)
    return [(i, rows[i]) for i in idx]


def gsm8k_gold(row: dict) -> str:
    return row["answer"].split("####")[-1].strip().replace(",", "")


def mean_se(xs: list) -> dict:
    """Mean and standard error of the values given (``None`` values left out)."""
    import math

    xs = [x for x in xs if x is not None]
    if not xs:
        return {"mean": None, "se": None, "n": 0}
    m = statistics.fmean(xs)
    se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else None
    return {"mean": round(m, 4), "se": round(se, 4) if se is not None else None, "n": len(xs)}


def settings_hash(settings: dict) -> str:
    """A short key for a run's settings: per-item records made under other settings are not reused."""
    import hashlib

    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def load_items(path: Path, key: str) -> dict[tuple[int, str], dict]:
    """Per-(GSM8K line, arm) records of earlier runs under settings ``key``; a line cut by a kill is redone."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("settings") == key:
                done[(r["gsm8k_line"], r["arm"])] = r
    return done
