"""Scale-out fixtures: a real redis-server on a free loopback port, started and stopped by the test.

Debian's ``redis-server`` (``apt-get install redis-server``; ``.ci/run`` installs it). Without it the
Redis tests skip and say how to get it — unless ``JUNTO_REQUIRE_REDIS=1`` (CI), where a missing
redis-server fails the run instead of hiding it. The server keeps nothing on disk (no RDB, no AOF):
a restart starts empty, as a crashed cache would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import free_port

ENABLE = "apt-get install redis-server  (Debian/Ubuntu; .ci/run does it)"


def require_redis() -> str:
    """The redis-server binary; skip (or, under JUNTO_REQUIRE_REDIS=1, fail) when it is missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    msg = f"the Redis tests need redis-server on PATH. Install it with: {ENABLE}"
    if os.environ.get("JUNTO_REQUIRE_REDIS") == "1":
        pytest.fail(msg + " [JUNTO_REQUIRE_REDIS=1: failing instead of skipping]", pytrace=False)
    pytest.skip(msg)


class RedisServer:
    """One redis-server process on 127.0.0.1:``port``; ``kill()`` (SIGKILL) and ``start()`` again on the same port."""

    def __init__(self, binary: str, port: int, workdir: Path):
        self.binary, self.port, self.workdir = binary, port, workdir
        self.proc: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        log = open(self.workdir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--protected-mode", "yes", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.wait_ready()

    def wait_ready(self, timeout: float = 10.0) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}; see {self.workdir}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    time.sleep(0.05)
            raise TimeoutError(f"redis-server on port {self.port} did not answer within {timeout}s")
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to clients (as a crash or an OOM kill)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def redis_server(tmp_path):
    """A fresh, empty redis-server for one test; stopped (and checked gone) afterwards."""
    srv = RedisServer(require_redis(), free_port(), tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        assert srv.proc is None or srv.proc.poll() is not None, "redis-server left running"


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory):
    """One redis-server for a module's tests (each test uses its own key prefix)."""
    srv = RedisServer(require_redis(), free_port(), tmp_path_factory.mktemp("redis"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
