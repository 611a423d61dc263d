"""Schema fuzzing (schemathesis) and a bounded concurrency soak."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from helpers import serve, stub_pool, stub_server


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


#: the fuzzer's checks: no 5xx, only documented statuses, documented media types, bodies matching their schema
FUZZ_CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_schemathesis_finds_no_contract_violation(embedded_gateway, tmp_path):
    """Schemathesis (pinned in the test extra) against the real gateway and real embedded model: 0 failures.

    Seeded and bounded (examples per operation, request timeout) so that CI stays fast; the gateway
    clamps max_tokens and samples (tests/gateway/conftest.py) so that valid requests are cheap.
    """
    url, _ = embedded_gateway
    st = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    proc = subprocess.run(
        [st, "run", f"{url}/openapi.json", "--url", url, "--checks", FUZZ_CHECKS, "--max-examples", "25",
         "--workers", "1", "--request-timeout", "60", "--seed", "1", "--generation-database", "none",
         "--phases", "examples,coverage,fuzzing", "--suppress-health-check", "too_slow"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "No issues found" in out, out[-6000:]
    # the generated requests reached the model, not only the validation layer
    metrics = httpx.get(f"{url}/metrics").text
    answered = [line for line in metrics.splitlines()
                if line.startswith("junto_requests_total{") and 'status="200"' in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in answered) >= 10, metrics


async def _soak(url: str, n: int) -> list[str]:
    async def one(client: httpx.AsyncClient, i: int) -> str:
        async with client.stream("POST", f"{url}/v1/chat/completions",
                                 json={"model": "junto-auto", "stream": True,
                                       "messages": [{"role": "user", "content": f"request {i}"}]}) as r:
            r.raise_for_status()
            lines = [line async for line in r.aiter_lines() if line.startswith("data:")]
        return lines[-1]

    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(*(one(client, i) for i in range(n)))


@pytest.mark.slow
def test_soak_200_concurrent_streams_lose_nothing_and_memory_settles(tmp_path):
    with stub_server(mode="trickle", tokens=10, delay=0.01) as (stub, _):
        with serve({"pool": stub_pool(("s", stub), max_concurrency=1000)}, tmp_path) as (url, proc):
            asyncio.run(_soak(url, 50))  # warm-up: imports, pools, allocator arenas
            baseline = rss_kib(proc.pid)
            for _ in range(3):
                ends = asyncio.run(_soak(url, 200))
                assert ends == ["data: [DONE]"] * 200, "every stream completed"
            after = rss_kib(proc.pid)
            stats = httpx.get(stub.removesuffix("/v1") + "/stats").json()
    assert stats["completed_streams"] == 650 and stats["aborted_streams"] == 0
    assert after - baseline < 20 * 1024, f"RSS grew {after - baseline} KiB over 600 streams"
