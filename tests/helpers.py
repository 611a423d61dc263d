"""Test helpers: real processes on loopback (the stub server, the junto CLI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "bench" / "stub_server.py"


def free_port() -> int:
    from junto.pool.launcher import free_port as fp

    return fp()


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextmanager
def stub_server(mode: str = "ok", tokens: int = 8, delay: float = 1.0):
    """Run bench/stub_server.py as a real process; yields (base_url, process)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(STUB), "--port", str(port), "--mode", mode,
                             "--tokens", str(tokens), "--delay", str(delay)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", proc=proc)
        yield f"http://127.0.0.1:{port}/v1", proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300, input: str | None = None
            ) -> subprocess.CompletedProcess:
    """Run `junto ...` as a real subprocess with the test session's environment."""
    return subprocess.run([sys.executable, "-m", "junto.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {}), "COLUMNS": "200", "NO_COLOR": "1"},
                          input=input)


def process_alive(pid: int) -> bool:
    from junto.pool.launcher import pid_alive

    return pid_alive(pid)
