"""The local pool (configs/pools/local.yaml) on this machine: start-up, memory, answer time and CPU per token.

    python bench/bench_local_pool.py          # BENCH_ANSWERS=3 answers of 64 tokens per model

Starts the three llama.cpp servers with junto's Launcher (a private state directory) and records, per
deployment: start-up seconds, resident memory (RSS of the server process, after loading and after the
answers), greedy 64-token answers through the pool client (wall seconds, tokens/s), and CPU-seconds per
generated token (the server's utime + stime over the answers, from /proc, ÷ completion tokens) — the
figure `configs/pools/local.yaml` records beside its per-parameter prices. Models answer one after
another (one at a time on a 2-core machine) so that each one's CPU is its own. Also the embedded pool's
start and first answer, to decide which pool the README's main command runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

ANSWERS = int(os.environ.get("BENCH_ANSWERS", "3"))
MAX_TOKENS = 64
PROMPTS = ["Explain how a refrigerator works.", "Describe the water cycle.", "Write about the history of bread."]
CLK = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime, stime


async def answers(pool, endpoints, name: str, pid: int) -> dict:
    from junto.pool.client import PoolClient

    async with PoolClient(pool, endpoints) as client:
        walls, toks = [], 0
        c0 = cpu_s(pid)
        for i in range(ANSWERS):
            t0 = time.perf_counter()
            r = await client.chat(name, [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], max_tokens=MAX_TOKENS,
                                  temperature=0.0, seed=0)
            walls.append(time.perf_counter() - t0)
            toks += r.usage.completion_tokens
        used = cpu_s(pid) - c0
    return {"answers": ANSWERS, "completion_tokens": toks, "wall_s_mean": round(sum(walls) / len(walls), 3),
            "tokens_per_s": round(toks / sum(walls), 2), "cpu_s_per_token": round(used / max(toks, 1), 4)}


def run_pool(ref: str) -> dict:
    from junto.pool.config import load_pool
    from junto.pool.launcher import Launcher
    from junto.pool.threads import argv_threads

    pool = load_pool(ref)
    out = {}
    with tempfile.TemporaryDirectory() as state:
        launcher = Launcher(pool, Path(state))
        try:
            t0 = time.perf_counter()
            endpoints, _ = launcher.up()
            out["startup_s_all"] = round(time.perf_counter() - t0, 2)
            records = launcher.records()
            total = 0.0
            for d in pool.deployments:
                pid = records[d.name].pid
                loaded = rss_mib(pid)
                row = asyncio.run(answers(pool, endpoints, d.name, pid))
                row.update(rss_mib_loaded=loaded, rss_mib_after=rss_mib(pid),
                           threads=argv_threads(records[d.name].argv))
                total += row["rss_mib_after"]
                out[d.name] = row
                print(d.name, row, flush=True)
            out["rss_mib_total"] = round(total, 1)
        finally:
            launcher.down()
    return out


def main() -> int:
    results = {"max_tokens": MAX_TOKENS, "local": run_pool("local"), "embedded": run_pool("embedded"),
               "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}
    save("local_pool", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
