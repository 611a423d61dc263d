"""One real vLLM server (CPU build, SmolLM2-135M-Instruct) for the whole test session.

The server is started through junto's Launcher from the shipped pool ``configs/pools/vllm-cpu.yaml``
with the test session's private state directory. It needs the vLLM virtualenv and the converted
model; without them the server tests skip and say how to get them — unless ``JUNTO_REQUIRE_VLLM=1``
(CI), where a missing environment fails the run instead of hiding it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POOL_FILE = ROOT / "configs" / "pools" / "vllm-cpu.yaml"
ENABLE = "junto vllm install && junto models convert  (or scripts/ci_vllm.sh)"


def vllm_missing() -> str | None:
    """Why a vLLM server cannot be started here, or None."""
    from junto.errors import JuntoError
    from junto.pool.convert import EMBEDDED_HF_PREFIX, converted_dir, is_converted
    from junto.pool.vllm_env import resolve_python

    try:
        resolve_python()
    except JuntoError as exc:
        return exc.message
    from junto.pool.config import load_pool

    model = load_pool(str(POOL_FILE)).deployments[0].model
    if model.startswith(EMBEDDED_HF_PREFIX) and not is_converted(model[len(EMBEDDED_HF_PREFIX):]):
        return f"the converted model is missing ({converted_dir(model[len(EMBEDDED_HF_PREFIX):])})"
    return None


def require_vllm() -> None:
    why = vllm_missing()
    if why is None:
        return
    msg = f"vLLM tests need the vLLM environment: {why}. Enable them with: {ENABLE}"
    if os.environ.get("JUNTO_REQUIRE_VLLM") == "1":
        pytest.fail(msg + " [JUNTO_REQUIRE_VLLM=1: failing instead of skipping]", pytrace=False)
    pytest.skip(msg)


@pytest.fixture
def vllm_available() -> None:
    """Skip (or, under JUNTO_REQUIRE_VLLM=1, fail) when the vLLM environment is missing."""
    require_vllm()


@pytest.fixture(scope="session")
def vllm_server(state_root):
    """(pool, launcher, endpoints, startup_s) of the session's vLLM server; stopped and checked at the end."""
    import time

    from junto.pool.config import load_pool
    from junto.pool.launcher import Launcher, group_members, pid_alive

    require_vllm()
    pool = load_pool(str(POOL_FILE))
    launcher = Launcher(pool, state_root)
    t0 = time.monotonic()
    endpoints, _ = launcher.up()
    startup_s = time.monotonic() - t0
    pgids = {r.pid for r in launcher.records().values() if r.pid}
    try:
        yield pool, launcher, endpoints, startup_s
    finally:
        # the current record may belong to a server restarted by a test: watch its group too
        pgids |= {r.pid for r in launcher.records().values() if r.pid}
        launcher.down()
        left = [p for g in pgids for p in group_members(g) if pid_alive(p)] + [p for p in pgids if pid_alive(p)]
        assert not left, f"vLLM processes left running after down: {left}"


@pytest.fixture
async def vllm_client(vllm_server):
    from junto.pool.client import PoolClient

    pool, launcher, _, _ = vllm_server
    async with PoolClient(pool, launcher.endpoints()) as client:
        yield client
