"""A vLLM server that cannot start: the error carries its log tail, and nothing is left running."""

from __future__ import annotations

import pytest


def test_failed_start_shows_the_log_tail_and_leaves_nothing(vllm_available, tmp_path, state_root):
    from junto.errors import ServerStartError
    from junto.pool.config import parse_pool
    from junto.pool.launcher import Launcher

    missing = tmp_path / "no-such-model"
    pool = parse_pool({"name": "vllm-broken", "deployments": [
        {"name": "broken", "backend": "vllm", "model": str(missing),
         "launch": {"dtype": "bfloat16", "cpu_kvcache_space_gib": 1, "startup_timeout_s": 300,
                    "env": {"HF_HUB_OFFLINE": "1"}}}]})
    launcher = Launcher(pool, state_root)
    progress: list[str] = []
    with pytest.raises(ServerStartError) as exc:
        launcher.up(progress=progress.append)
    err = exc.value
    assert "broken: the vllm server exited" in err.message
    assert "no-such-model" in err.log_tail  # vLLM's own complaint, from its log
    assert "full log:" in err.hint and err.hint.split("full log: ")[1].endswith("broken.log")
    assert any("starting vllm server" in m for m in progress)
    assert launcher.records() == {}  # a failed up forgets what it started
    assert not processes_mentioning(str(missing)), "a process of the failed start is still running"


def processes_mentioning(text: str) -> list[int]:
    """Live pids whose command line contains ``text`` (the unique model path of this test)."""
    from pathlib import Path

    from junto.pool.launcher import pid_alive

    out = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if text.encode() in (entry / "cmdline").read_bytes() and pid_alive(int(entry.name)):
                out.append(int(entry.name))
        except OSError:
            continue
    return out
