"""junto's pool-client overhead against a direct HTTP call to the same server.

A fast OpenAI-compatible stub (bench/stub_server.py) runs as a real process on loopback, so the
figures are the client's own cost. Each round calls the stub once through each path, interleaved
so that drift hits every path alike: raw aiohttp (one pooled session: the floor, junto's client is built
on it), raw httpx, junto's
PoolClient (hot path, aiohttp), the openai SDK, and litellm.acompletion (junto's path for non-OpenAI
providers). Reported: p50/p99 per path, and each path's median added ms and ratio over raw aiohttp.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import save, summary_ms  # noqa: E402
from helpers import stub_server  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2000"))
WARMUP = 100
MSG = [{"role": "user", "content": "hello there"}]


async def main() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import httpx
    import litellm
    import openai

    from junto.pool.client import PoolClient
    from junto.pool.config import parse_pool

    litellm.suppress_debug_info = True
    with stub_server(tokens=8) as (url, _):
        pool = parse_pool({"name": "b", "deployments": [{"name": "stub", "backend": "openai", "model": "stub", "url": url}]})
        raw = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=8))
        sdk = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
        junto = PoolClient(pool)

        async def p_raw():
            r = await raw.post(f"{url}/chat/completions", json={"model": "stub", "messages": MSG})
            return r.json()["choices"][0]["message"]["content"]

        async def p_junto():
            return (await junto.chat("stub", MSG)).text

        async def p_sdk():
            return (await sdk.chat.completions.create(model="stub", messages=MSG)).choices[0].message.content

        async def p_litellm():
            r = await litellm.acompletion(model="openai/stub", api_base=url, api_key="x", messages=MSG)
            return r.choices[0].message.content

        import aiohttp

        ah = aiohttp.ClientSession()

        async def p_aiohttp():
            async with ah.post(f"{url}/chat/completions", json={"model": "stub", "messages": MSG}) as r:
                return (await r.json())["choices"][0]["message"]["content"]

        paths = {"raw_httpx": p_raw, "raw_aiohttp": p_aiohttp, "junto_client": p_junto, "openai_sdk": p_sdk,
                 "litellm": p_litellm}
        times: dict[str, list[float]] = {k: [] for k in paths}
        for i in range(WARMUP + ROUNDS):
            for name, fn in paths.items():
                if name == "litellm" and i % 4:  # litellm is slow; sample every 4th round
                    continue
                t0 = time.perf_counter()
                text = await fn()
                dt = time.perf_counter() - t0
                assert text, name
                if i >= WARMUP:
                    times[name].append(dt)
        await raw.aclose()
        await ah.close()
        await sdk.close()
        await junto.aclose()

    stats = {k: summary_ms(v) for k, v in times.items()}
    base = statistics.median(times["raw_aiohttp"])  # junto's client is built on aiohttp: its floor
    for k, v in times.items():
        med = statistics.median(v)
        stats[k]["added_ms_vs_raw_aiohttp_p50"] = round((med - base) * 1000, 4)
        stats[k]["ratio_vs_raw_aiohttp_p50"] = round(med / base, 3)
    save("client_overhead", {"server": "bench/stub_server.py on loopback (8-token answer)", "rounds": ROUNDS,
                             "paths": stats})


if __name__ == "__main__":
    asyncio.run(main())
