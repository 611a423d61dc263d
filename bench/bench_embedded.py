"""Time to first token and decode speed of the embedded model (SmolLM2-135M, llama.cpp) through junto.

Starts the embedded pool with junto's launcher (its own state directory), then streams a fixed
set of prompts through PoolClient.stream at temperature 0, and times the same requests made with
raw httpx streaming side by side, so that junto's share of the time to first token is visible.
llama.cpp reuses the KV cache of the previous prompt, so consecutive requests never repeat a prompt:
the two paths take turns over distinct prompts, swapping halves on each repeat. Also records the
server's start-up time (process start to first 200 on /v1/models).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save, summary_ms  # noqa: E402

PROMPTS = [
    "Explain what a prime number is.",
    "Write a short poem about the sea.",
    "List three uses of a paperclip.",
    "What is the boiling point of water in Celsius?",
    "Describe a cat in two sentences.",
    "Why is the sky blue?",
    "Give me a tip for learning to cook.",
    "What does a librarian do?",
    "Name two planets and one fact about each.",
    "How do bicycles stay upright?",
]
REPEATS = int(os.environ.get("BENCH_REPEATS", "4"))
MAX_TOKENS = 64


async def raw_stream(http, url: str, prompt: str) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    ttft, n = None, 0
    body = {"model": "smollm2-135m", "messages": [{"role": "user", "content": prompt}], "stream": True,
            "max_tokens": MAX_TOKENS, "temperature": 0}
    async with http.stream("POST", f"{url}/chat/completions", json=body) as r:
        async for line in r.aiter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                delta = (json.loads(line[5:])["choices"] or [{}])[0].get("delta", {}).get("content")
                if delta:
                    ttft = ttft or time.perf_counter() - t0
                    n += 1
    return ttft, time.perf_counter() - t0, n


async def main() -> None:
    import httpx

    from junto.pool.client import PoolClient
    from junto.pool.config import load_pool
    from junto.pool.launcher import Launcher
    from junto.pool.threads import pool_thread_plan
    from junto.pool.types import StreamEnd

    pool = load_pool("embedded")
    threads = pool_thread_plan(pool.deployments)["smollm2-135m"]
    with tempfile.TemporaryDirectory() as state:
        launcher = Launcher(pool, Path(state))
        t0 = time.perf_counter()
        endpoints, _ = launcher.up()
        startup_s = time.perf_counter() - t0
        url = endpoints["smollm2-135m"]
        try:
            junto_ttft, junto_rate, raw_ttft, raw_rate = [], [], [], []
            async with PoolClient(pool, endpoints) as client, httpx.AsyncClient(timeout=120) as http:
                await raw_stream(http, url, "Warm up.")
                for rep in range(REPEATS):
                    for i, prompt in enumerate(PROMPTS):
                        if (i + rep) % 2 == 0:
                            ttft, total, n = await raw_stream(http, url, prompt)
                            raw_ttft.append(ttft)
                            raw_rate.append((n - 1) / (total - ttft) if n > 1 else 0)
                            continue
                        async for ev in client.stream("smollm2-135m", [{"role": "user", "content": prompt}],
                                                      max_tokens=MAX_TOKENS, temperature=0):
                            if isinstance(ev, StreamEnd):
                                n = ev.usage.completion_tokens
                                junto_ttft.append(ev.ttft_s)
                                junto_rate.append((n - 1) / (ev.latency_s - ev.ttft_s) if n > 1 else 0)
        finally:
            launcher.down()
    save("embedded_model", {
        "model": f"SmolLM2-135M-Instruct Q4_1 (llama-cpp-python server, n_threads={threads})",
        "max_tokens": MAX_TOKENS, "requests_per_path": len(junto_ttft),
        "server_startup_s": round(startup_s, 2),
        "junto": {"ttft": summary_ms(junto_ttft), "decode_tokens_per_s_median": round(statistics.median(junto_rate), 1)},
        "raw_httpx": {"ttft": summary_ms(raw_ttft), "decode_tokens_per_s_median": round(statistics.median(raw_rate), 1)},
        "junto_ttft_added_ms_p50": round((statistics.median(junto_ttft) - statistics.median(raw_ttft)) * 1000, 2),
    })


if __name__ == "__main__":
    asyncio.run(main())
