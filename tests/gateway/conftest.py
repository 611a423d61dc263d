"""Gateway fixtures: `junto serve` as a real subprocess on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from helpers import free_port, wait_http


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


@pytest.fixture(scope="module")
def embedded_gateway(embedded_pool, tmp_path_factory):
    """The gateway in front of the real embedded llama.cpp server (adopted from the session fixture)."""
    tmp = tmp_path_factory.mktemp("gw")
    with serve({"pool": "embedded", "gateway": {"max_tokens_limit": 24, "max_samples_limit": 2}}, tmp) as (url, proc):
        yield url, proc
