"""Without the vLLM environment the server tests skip with the way to enable them; under
JUNTO_REQUIRE_VLLM=1 (CI) they fail instead. Runs pytest on the real server tests in a subprocess
with JUNTO_VLLM_PYTHON pointing nowhere, so no server is ever started here (never skips)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_pytest(tmp_path: Path, require: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "JUNTO_VLLM_PYTHON": str(tmp_path / "no-venv" / "bin" / "python"),
           "JUNTO_TEST_STATE_DIR": str(tmp_path / "state")}
    env.pop("JUNTO_REQUIRE_VLLM", None)
    if require is not None:
        env["JUNTO_REQUIRE_VLLM"] = require
    return subprocess.run([sys.executable, "-m", "pytest", str(HERE / "test_vllm_server.py"), "-q", "-rs",
                           "-p", "no:cacheprovider", "-k", "test_chat or test_logprobs"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=HERE.parents[1])


def test_missing_vllm_skips_with_how_to_enable(tmp_path):
    r = run_pytest(tmp_path, None)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 skipped" in r.stdout
    assert "junto vllm install && junto models convert" in r.stdout


def test_missing_vllm_fails_when_required(tmp_path):
    r = run_pytest(tmp_path, "1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "JUNTO_REQUIRE_VLLM=1" in r.stdout and "junto vllm install" in r.stdout
    assert "skipped" not in r.stdout.splitlines()[-1]
