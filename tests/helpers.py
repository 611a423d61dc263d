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
import yaml

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


@contextmanager
def serve(config: dict | str, tmp_path: Path, env: dict[str, str] | None = None, extra_args: list[str] = ()):
    """Run `junto serve` on a free port; yields (base_url, process); SIGTERM at the end."""
    if isinstance(config, dict):
        path = tmp_path / f"junto-{free_port()}.yaml"
        path.write_text(yaml.safe_dump(config))
        config = str(path)
    port = free_port()
    log = open(tmp_path / f"serve-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "junto.cli", "serve", "--config", config, "--port", str(port),
                             *extra_args], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, proc=proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def stub_pool(*deployments: tuple[str, str], **extra) -> dict:
    """A pool of OpenAI-compatible deployments at the given (name, url) pairs."""
    return {"name": "stubs", "deployments": [
        {"name": n, "backend": "openai", "model": "stub", "url": u, "connect_retries": 0, **extra} for n, u in deployments]}
