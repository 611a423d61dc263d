"""Session fixtures: an isolated state directory, and one real llama.cpp server running the embedded model.

The model cache is shared with the user's (``JUNTO_CACHE_DIR`` or ~/.cache/junto) so the GGUF is
pulled once; the state directory (pid files, logs) is private to the test session.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/helpers.py

_STATE = Path(os.environ.get("JUNTO_TEST_STATE_DIR", Path(__file__).resolve().parents[1] / ".junto-test" / f"state-{os.getpid()}"))
os.environ["JUNTO_STATE_DIR"] = str(_STATE)
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def state_root() -> Path:
    return _STATE


def _serve(pool, root: Path, what: str):
    """Start ``pool``'s servers under ``root``, yield (pool, endpoints), stop them; fail if a process is left."""
    from junto.pool.launcher import Launcher, pid_alive

    launcher = Launcher(pool, root)
    endpoints, _ = launcher.up()
    pids = [r.pid for r in launcher.records().values() if r.pid]
    try:
        yield pool, endpoints
    finally:
        launcher.down()
        assert not [p for p in pids if pid_alive(p)], f"{what} left running after down"


@pytest.fixture(scope="session")
def embedded_pool():
    """The built-in embedded pool, its llama.cpp server started once for the whole session.

    Yields (pool, endpoints). Stopped at the end; the test session fails if a process is left.
    """
    from junto.pool.config import load_pool

    yield from _serve(load_pool("embedded"), _STATE, "embedded llama.cpp server")


QWEN05 = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="session")
def qwen05_state_root() -> Path:
    """The state directory of the qwen05_pool server: a Junto given it adopts that server."""
    return _STATE / "qwen05"


@pytest.fixture(scope="session")
def qwen05_pool(qwen05_state_root):
    """One llama-server running Qwen2.5-Coder-0.5B-Instruct (2 slots of 4096 tokens) for the whole session:
    the judge, verifier and template tests share it. Yields (pool, endpoints); stopped at the end."""
    from junto.pool.config import parse_pool

    pool = parse_pool({"name": "qwen05-tests", "deployments": [{
        "name": QWEN05, "backend": "llamacpp", "model": f"embedded:{QWEN05}", "context_length": 4096,
        "max_concurrency": 2, "launch": {"n_threads": "auto", "startup_timeout_s": 300}}]})
    yield from _serve(pool, qwen05_state_root, "the Qwen2.5-Coder-0.5B llama-server")


@pytest.fixture
async def embedded_client(embedded_pool):
    from junto.pool.client import PoolClient

    pool, endpoints = embedded_pool
    async with PoolClient(pool, endpoints) as client:
        yield client
