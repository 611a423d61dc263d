"""Start, stop and report the local model servers of a pool.

Each managed deployment runs as its own process in its own session (process group), so that a
stop reaches every child it spawned (vLLM starts engine workers). Per pool, the state directory
holds one JSON record and one log per deployment, and a lock file that serializes ``up`` and
``down`` across processes. Records are written atomically before the server is probed, so a
``junto`` that dies mid-start never leaves a server that ``down`` cannot find.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from junto.errors import JuntoError, ServerStartError
from junto.paths import atomic_write_text, state_dir
from junto.pool.backends import get_backend
from junto.pool.config import Deployment, LlamaCppLaunch, Pool
from junto.pool.threads import argv_threads, available_cores, explain, pool_thread_plan

Progress = Callable[[str], None]


@dataclass
class ServerRecord:
    """What junto knows of one running server (the JSON state file)."""

    deployment: str
    backend: str
    url: str
    port: int
    pid: int | None = None
    managed: bool = True
    argv: list[str] = field(default_factory=list)
    log: str = ""
    started_at: float = 0.0

    @classmethod
    def load(cls, path: Path) -> ServerRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


@dataclass
class DeploymentStatus:
    deployment: str
    backend: str
    state: str  # running | stopped | external | unreachable | dead
    url: str | None = None
    pid: int | None = None
    latency_ms: float | None = None
    detail: str = ""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def probe(url: str, timeout: float = 2.0, api_key: str | None = None) -> float | None:
    """GET {url}/models; the round trip in ms when the server answers 200, else None."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    t0 = time.perf_counter()
    try:
        r = httpx.get(f"{url}/models", timeout=timeout, headers=headers)
    except (httpx.HTTPError, OSError):
        return None
    return (time.perf_counter() - t0) * 1000 if r.status_code == 200 else None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) is not alive
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def same_process(record: ServerRecord) -> bool:
    """Guard against pid reuse: the live process must still run the command we started."""
    if not pid_alive(record.pid):
        return False
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): trust the pid
    return bool(record.argv) and [c.decode(errors="replace") for c in cmdline if c][:3] == record.argv[:3]


def log_tail(path: str | Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


class Launcher:
    """``up``, ``down`` and ``status`` for one pool's servers."""

    def __init__(self, pool: Pool, root: Path | None = None, *, stop_grace_s: float = 10.0):
        self.pool = pool
        self.dir = (root or state_dir()) / "pools" / pool.name
        self.stop_grace_s = stop_grace_s

    # -- state files -------------------------------------------------------------------------
    def _record_path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def _log_path(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"

    def records(self) -> dict[str, ServerRecord]:
        out = {}
        for path in sorted(self.dir.glob("*.json")):
            rec = ServerRecord.load(path)
            if rec is not None:
                out[rec.deployment] = rec
        return out

    def _save(self, rec: ServerRecord) -> None:
        atomic_write_text(self._record_path(rec.deployment), json.dumps(asdict(rec), indent=2))

    def _forget(self, name: str) -> None:
        self._record_path(name).unlink(missing_ok=True)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    # -- public API --------------------------------------------------------------------------
    def endpoints(self) -> dict[str, str]:
        """Base URL of every deployment that has one now (running managed servers, configured URLs)."""
        recs = self.records()
        out = {}
        for dep in self.pool.deployments:
            if dep.url:
                out[dep.name] = dep.url
            elif dep.name in recs:
                out[dep.name] = recs[dep.name].url
        return out

    def up(self, progress: Progress | None = None) -> tuple[dict[str, str], list[str]]:
        """Start every managed deployment that is not already running.

        Returns (endpoints, names started by this call). If any server fails to start, the ones
        this call started are stopped again, so a failed ``up`` leaves nothing behind.
        """
        progress = progress or (lambda _m: None)
        started: list[str] = []
        with self._locked():
            # threads for every local llama.cpp server of the pool, running or not (they share the cores)
            cores = available_cores()
            threads = pool_thread_plan(self.pool.deployments, cores)
            try:
                pending: list[tuple[Deployment, subprocess.Popen, ServerRecord]] = []
                for dep in self.pool.deployments:
                    if not dep.managed:
                        if dep.url and get_backend(dep.backend).openai_compatible:
                            if probe(dep.url, api_key=dep.api_key) is None:
                                progress(f"{dep.name}: endpoint {dep.url} is not answering yet")
                        continue
                    rec = self.records().get(dep.name)
                    if rec is not None:
                        if same_process(rec) and probe(rec.url) is not None:
                            n = argv_threads(rec.argv) if rec.backend == "llamacpp" else None
                            progress(f"{dep.name}: already running at {rec.url}" + (f" ({n} threads)" if n else ""))
                            continue
                        if rec.managed:
                            self._stop_record(rec)  # alive but not answering, or dead with live workers: restart it
                        self._forget(dep.name)
                    note = ""
                    if dep.name in threads and isinstance(dep.launch, LlamaCppLaunch):
                        note = " with " + explain(dep.launch.n_threads, threads[dep.name], cores, len(threads))
                        dep = dep.model_copy(update={"launch": dep.launch.model_copy(
                            update={"n_threads": threads[dep.name]})})
                    started_entry = self._spawn(dep, progress, note)
                    if started_entry is None:
                        continue
                    proc, rec = started_entry
                    started.append(dep.name)
                    pending.append((dep, proc, rec))
                self._wait_ready(pending, progress)
            except BaseException:
                for name in started:
                    rec = self.records().get(name)
                    if rec is not None:
                        self._stop_record(rec)
                        self._forget(name)
                raise
        return self.endpoints(), started

    def down(self, names: list[str] | None = None, progress: Progress | None = None) -> list[str]:
        """Stop managed servers (all, or ``names``); adopted ones are only forgotten. Returns stopped names."""
        progress = progress or (lambda _m: None)
        stopped = []
        with self._locked():
            for name, rec in self.records().items():
                if names is not None and name not in names:
                    continue
                if rec.managed:
                    progress(f"{name}: stopping pid {rec.pid}")
                    self._stop_record(rec)
                    stopped.append(name)
                self._forget(name)
        return stopped

    def status(self) -> list[DeploymentStatus]:
        recs = self.records()
        out = []
        for dep in self.pool.deployments:
            if not dep.managed:
                if dep.backend == "litellm" and not dep.url:
                    out.append(DeploymentStatus(dep.name, dep.backend, "external", None, detail=dep.model))
                    continue
                ms = probe(dep.url, api_key=dep.api_key) if dep.url else None
                out.append(DeploymentStatus(dep.name, dep.backend, "external" if ms is not None else "unreachable",
                                            dep.url, latency_ms=ms))
                continue
            rec = recs.get(dep.name)
            if rec is None:
                out.append(DeploymentStatus(dep.name, dep.backend, "stopped"))
                continue
            alive = same_process(rec) if rec.managed else True
            ms = probe(rec.url) if alive else None
            state = "running" if ms is not None else ("unreachable" if alive else "dead")
            detail = "" if rec.managed else "adopted"
            n_threads = argv_threads(rec.argv) if rec.backend == "llamacpp" else None
            if n_threads is not None:
                detail = f"{n_threads} thread{'s' if n_threads != 1 else ''}"
            if state == "dead":
                detail = f"process {rec.pid} exited; see {rec.log}"
            out.append(DeploymentStatus(dep.name, dep.backend, state, rec.url, rec.pid, ms, detail))
        return out

    # -- internals ---------------------------------------------------------------------------
    def _spawn(self, dep: Deployment, progress: Progress,
               note: str = "") -> tuple[subprocess.Popen, ServerRecord] | None:
        backend = get_backend(dep.backend)
        host = getattr(dep.launch, "host", "127.0.0.1")
        port = getattr(dep.launch, "port", None)
        if port is not None and port_in_use(host, port):
            url = f"http://{host}:{port}/v1"
            if probe(url) is not None:
                # an OpenAI-compatible server already listens there: adopt it instead of fighting for the port
                progress(f"{dep.name}: adopting the server already answering at {url}")
                self._save(ServerRecord(dep.name, dep.backend, url, port, None, managed=False, started_at=time.time()))
                return None
            raise JuntoError(
                f"{dep.name}: port {port} on {host} is in use by a process that is not an OpenAI-compatible server",
                hint="free the port, or remove 'launch.port' from the pool file to let junto pick a free one",
            )
        port = port or free_port(host)
        base = self.pool.source.parent if self.pool.source else None
        argv, extra_env = backend.command(dep, host, port, base, progress)
        log_path = self._log_path(dep.name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **extra_env, "PYTHONUNBUFFERED": "1"}
        progress(f"{dep.name}: starting {dep.backend} server on {host}:{port}{note}")
        with open(log_path, "ab") as log:
            log.write(f"\n--- junto: starting {dep.name} at {time.ctime()}: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, start_new_session=True, close_fds=True)
            except OSError as exc:
                raise ServerStartError(f"{dep.name}: cannot execute {argv[0]}: {exc.strerror}") from None
        rec = ServerRecord(dep.name, dep.backend, f"http://{host}:{port}/v1", port, proc.pid, True, argv,
                           str(log_path), time.time())
        self._save(rec)
        return proc, rec

    def _wait_ready(self, pending: list[tuple[Deployment, subprocess.Popen, ServerRecord]],
                    progress: Progress) -> None:
        t0 = time.monotonic()
        waiting = list(pending)
        while waiting:
            for item in list(waiting):
                dep, proc, rec = item
                code = proc.poll()
                if code is not None:
                    raise ServerStartError(
                        f"{dep.name}: the {dep.backend} server exited with code {code} during start-up",
                        hint=f"full log: {rec.log}",
                        log_tail=log_tail(rec.log),
                    )
                if probe(rec.url, timeout=1.0) is not None:
                    n = argv_threads(rec.argv) if rec.backend == "llamacpp" else None
                    threads = f" ({n} thread{'s' if n != 1 else ''})" if n else ""
                    progress(f"{dep.name}: ready at {rec.url} after {time.monotonic() - t0:.1f}s{threads}")
                    waiting.remove(item)
                    continue
                limit = get_backend(dep.backend).startup_timeout(dep)
                elapsed = time.monotonic() - t0
                if elapsed >= 2 and int(elapsed * 10) % 10 == 0:  # about once a second, the server's own words
                    last = log_tail(rec.log, 1).strip()
                    progress(f"{dep.name}: starting ({elapsed:.0f}s){': ' + last[:100] if last else ''}")
                if elapsed > limit:
                    raise ServerStartError(
                        f"{dep.name}: not ready after {limit:.0f}s",
                        hint=f"raise launch.startup_timeout_s in the pool file, or read the full log: {rec.log}",
                        log_tail=log_tail(rec.log),
                    )
            if waiting:
                time.sleep(0.1)

    def _stop_record(self, rec: ServerRecord) -> None:
        if not rec.managed or not rec.pid:
            return
        if not same_process(rec):
            # the server died but its workers may live on (vLLM's engine core and worker, GBs of
            # memory): they keep its group id, which Linux never hands out again while the group has members
            if any(pid_alive(p) for p in group_members(rec.pid)):
                self._kill_group(rec.pid, rec.pid)
            return
        try:
            pgid = os.getpgid(rec.pid)
        except ProcessLookupError:
            return
        # the server is its own session leader, so its group holds it and every worker it spawned
        self._kill_group(rec.pid, pgid if pgid == rec.pid else None)

    def _kill_group(self, pid: int, target: int | None) -> None:
        """SIGTERM the group (or the pid), wait the grace period, then SIGKILL what is left."""
        self._signal(pid, target, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_s
        while time.monotonic() < deadline and self._group_alive(pid, target):
            self._reap(pid)
            time.sleep(0.05)
        if self._group_alive(pid, target):
            self._signal(pid, target, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self._group_alive(pid, target):
                self._reap(pid)
                time.sleep(0.05)
        self._reap(pid)

    @staticmethod
    def _signal(pid: int, pgid: int | None, sig: int) -> None:
        try:
            if pgid is not None:
                os.killpg(pgid, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    @staticmethod
    def _group_alive(pid: int, pgid: int | None) -> bool:
        if pgid is None:
            return pid_alive(pid)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # killpg(…, 0) also succeeds while only zombies remain; look for a live member
        return any(pid_alive(p) for p in group_members(pgid)) or pid_alive(pid)

    @staticmethod
    def _reap(pid: int) -> None:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def group_members(pgid: int) -> list[int]:
    """Pids of the running processes whose process group is ``pgid`` (Linux /proc; empty elsewhere).

    A zombie (exited, not yet reaped by its parent) runs nothing and holds no resources: it is not a member.
    """
    members = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members
