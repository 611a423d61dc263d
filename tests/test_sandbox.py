"""The sandbox for model-written code (junto.sandbox), attacked with real code.

Each attack runs under every isolation mode this machine offers: ``auto`` (the best layers: namespaces here), ``userns``
(the path an unprivileged user gets; skipped where user namespaces are unavailable) and ``none`` (rlimits and the
audit hook only). What the tests assert is what each mode prevents; after every run no process of it is left
(checked in /proc) and the test process itself is unharmed.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from junto.sandbox import SandboxResult, SandboxUnavailable, isolation_layers, run_python

MARKER_ENV = b"JUNTO_SANDBOX_RUN="


def _available_modes() -> list[str]:
    modes = ["auto"]
    try:
        run_python("pass", isolation="userns", timeout_s=20)
        modes.append("userns")
    except SandboxUnavailable:
        pass
    return modes + ["none"]


MODES = _available_modes()


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def sandbox_pids(run_id: str | None = None) -> list[int]:
    """Live processes of a sandbox run (any run when ``run_id`` is None): the supervisor carries the run id in its
    command line, the code and all its children in their environment."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        cmd, env = _read(f"/proc/{d}/cmdline"), _read(f"/proc/{d}/environ")
        state = _read(f"/proc/{d}/stat").rsplit(b")", 1)[-1].split()[:1]
        if state == [b"Z"] and not cmd:
            continue
        if run_id is None:
            hit = b"--junto-sandbox-child" in cmd or MARKER_ENV in env
        else:
            hit = run_id.encode() in cmd or (MARKER_ENV + run_id.encode()) in env.split(b"\0")
        if hit:
            found.append(int(d))
    return found


def assert_nothing_left(r: SandboxResult) -> None:
    assert r.run_id
    deadline = time.monotonic() + 5
    while (left := sandbox_pids(r.run_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes of run {r.run_id} still alive: {left}"


def sandbox_dirs() -> set[str]:
    tmp = Path(tempfile.gettempdir())
    return {p.name for p in tmp.glob("junto-sandbox-*")}


@pytest.fixture
def clean_tmp():
    before = sandbox_dirs()
    yield
    deadline = time.monotonic() + 3  # room for a run of someone else's that is still in flight
    while (left := sandbox_dirs() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == set(), "the sandbox's temporary directory was not deleted"


# -- what works --------------------------------------------------------------------------------------------------

def test_layers_here():
    layers = isolation_layers()
    assert "rlimits" in layers
    # this machine runs the tests as root with namespaces available; elsewhere, say what is missing
    if {"net", "mount", "pid"} <= set(layers):
        assert "uid" in layers or "user" in layers
    else:
        assert "audit" in layers


@pytest.mark.parametrize("mode", MODES)
def test_ordinary_code_runs(mode, clean_tmp):
    code = (
        "import json, math, re, heapq, itertools, functools, collections, fractions, decimal, datetime, random\n"
        "import hashlib, string, bisect, statistics, typing, threading, os, sys, tempfile\n"
        "open('out.txt', 'w').write('kept')\n"
        "assert open('out.txt').read() == 'kept'\n"
        "with tempfile.NamedTemporaryFile() as f: f.write(b'x')\n"
        "t = [threading.Thread(target=sum, args=([1, 2],)) for _ in range(4)]\n"
        "[x.start() for x in t]; [x.join() for x in t]\n"
        "print('héllo', math.comb(10, 3), hash('abc'), os.getcwd() == os.environ['HOME'] == os.environ['TMPDIR'])\n"
        "print('to stderr', file=sys.stderr)\n")
    r = run_python(code, isolation=mode)
    assert r.ok and r.returncode == 0 and not r.timed_out and r.killed_reason is None, r.stderr
    assert r.stdout.startswith("héllo 120 ") and r.stdout.strip().endswith("True")
    assert r.stderr == "to stderr\n"
    # a fixed hash seed: the same program prints the same hash every run
    assert run_python(code, isolation=mode).stdout == r.stdout
    assert_nothing_left(r)


@pytest.mark.parametrize("mode", MODES)
def test_exit_status_and_exceptions(mode):
    r = run_python("import sys\nsys.exit(3)", isolation=mode)
    assert not r.ok and r.returncode == 3 and r.killed_reason is None
    r = run_python("assert 1 == 2, 'nope'", isolation=mode)
    assert not r.ok and r.returncode == 1 and "AssertionError: nope" in r.stderr
    r = run_python("def f(:\n", isolation=mode)
    assert not r.ok and "SyntaxError" in r.stderr


def test_environment_is_replaced(monkeypatch):
    monkeypatch.setenv("JUNTO_TEST_SECRET_TOKEN", "sk-do-not-leak")
    r = run_python("import os, json\nprint(json.dumps(dict(os.environ)))")
    assert r.ok
    assert "sk-do-not-leak" not in r.stdout
    import json

    env = json.loads(r.stdout)
    assert set(env) == {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PYTHONHASHSEED", "JUNTO_SANDBOX_RUN"}
    assert env["JUNTO_SANDBOX_RUN"] == r.run_id


def test_no_site_packages():
    r = run_python("import numpy")
    assert not r.ok and "ModuleNotFoundError" in r.stderr


# -- attacks -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_cannot_read_outside_its_directory(mode, tmp_path, clean_tmp):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-4711")
    project_file = Path(__file__).resolve()
    code = f"""
import os
targets = [{str(secret)!r}, {str(project_file)!r}, os.path.expanduser('~root/.bashrc'),
           '/proc/1/root' + {str(secret)!r}, '/proc/1/cwd/main.py']
for t in targets:
    try:
        print('READ', t, open(t).read()[:40])
    except Exception as e:
        print('DENIED', t, type(e).__name__)
for d in [{str(tmp_path)!r}, {str(project_file.parent)!r}, '/root', '/home', '/work']:
    try:
        print('LIST', d, os.listdir(d))
    except Exception as e:
        print('DENIED', d, type(e).__name__)
"""
    r = run_python(code, isolation=mode)
    assert "TOPSECRET" not in r.stdout + r.stderr
    assert "READ" not in r.stdout, r.stdout
    listed = [line for line in r.stdout.splitlines() if line.startswith("LIST")]
    assert not any("secret.txt" in line or "test_sandbox.py" in line for line in listed), listed
    assert f"DENIED {secret}" in r.stdout
    assert secret.read_text() == "TOPSECRET-4711"
    if "mount" in r.layers:
        # the host's files are not there at all, not merely unreadable
        assert f"DENIED {secret} FileNotFoundError" in r.stdout
        assert f"DENIED {project_file} FileNotFoundError" in r.stdout
    assert_nothing_left(r)


@pytest.mark.parametrize("mode", MODES)
def test_cannot_write_outside_its_directory(mode, tmp_path):
    target = tmp_path / "planted.txt"
    os.chmod(tmp_path, 0o777)  # even a world-writable directory of the host is out of reach
    r = run_python(f"open({str(target)!r}, 'w').write('x')\nopen('/usr/planted', 'w').write('x')", isolation=mode)
    assert not r.ok
    assert not target.exists() and not Path("/usr/planted").exists()


@pytest.fixture
def loopback_server():
    """A TCP server on the host's loopback that records every connection it accepts."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.1)
    accepted: list[tuple] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, addr = srv.accept()
            except OSError:
                continue
            accepted.append(addr)
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    t.join(timeout=2)
    srv.close()


def test_loopback_server_fixture_works(loopback_server):
    port, accepted = loopback_server
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    deadline = time.monotonic() + 2
    while not accepted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert accepted  # so the sandbox tests below prove something


@pytest.mark.parametrize("mode", MODES)
def test_cannot_open_a_socket_to_the_host(mode, loopback_server, clean_tmp):
    port, accepted = loopback_server
    code = f"""
import socket
for host in ('127.0.0.1', 'localhost', '::1'):
    try:
        s = socket.create_connection((host, {port}), timeout=2)
        print('CONNECTED', host)
    except Exception as e:
        print('FAILED', host, type(e).__name__)
"""
    r = run_python(code, isolation=mode)
    time.sleep(0.3)
    assert "CONNECTED" not in r.stdout
    assert "FAILED 127.0.0.1" in r.stdout or "PermissionError" in r.stderr
    assert accepted == []
    if "net" in r.layers:
        assert "FAILED 127.0.0.1 OSError" in r.stdout  # network unreachable: the loopback is down and not the host's
    assert_nothing_left(r)


@pytest.mark.parametrize("mode", MODES)
def test_fork_bomb_is_contained(mode, clean_tmp):
    code = """
import os, time
n = 0
while True:
    try:
        if os.fork() == 0:
            while True:
                try:
                    os.fork()
                except Exception:
                    time.sleep(0.01)
        n += 1
    except Exception as e:
        if n >= 0:
            print('refused after', n, type(e).__name__, flush=True)
            n = -1
        time.sleep(0.01)
"""
    peak = [0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], len(sandbox_pids()))
            time.sleep(0.05)

    w = threading.Thread(target=watch)
    w.start()
    try:
        r = run_python(code, isolation=mode, timeout_s=2, max_procs=16)
    finally:
        done.set()
        w.join()
    assert not r.ok and r.timed_out and r.killed_reason == "timeout"
    assert r.duration_s < 6
    assert "refused after" in r.stdout
    # the code's processes (16 at most) plus the supervisor and its init
    assert peak[0] <= 16 + 3, peak[0]
    assert_nothing_left(r)


@pytest.mark.parametrize("mode", MODES)
def test_allocating_10_gb_fails(mode, clean_tmp):
    r = run_python("x = bytearray(10 * 1024 ** 3)\nprint('allocated', len(x))", isolation=mode, memory_mb=512)
    assert not r.ok and "allocated" not in r.stdout
    assert "MemoryError" in r.stderr or r.returncode is not None and r.returncode < 0
    assert_nothing_left(r)


@pytest.mark.parametrize("mode", MODES)
def test_huge_file_is_cut_off(mode, clean_tmp):
    code = """
import os
with open('huge.bin', 'wb') as f:
    for i in range(2048):
        f.write(b'x' * (1 << 20))
print('wrote 2 GiB')
"""
    r = run_python(code, isolation=mode, max_file_mb=8)
    assert not r.ok and "wrote" not in r.stdout
    assert "File too large" in r.stderr or "No space left" in r.stderr
    assert_nothing_left(r)


def test_many_files_hit_the_disk_quota():
    code = """
for i in range(64):
    with open(f'f{i}.bin', 'wb') as f:
        f.write(b'x' * (4 << 20))
print('wrote 256 MiB')
"""
    r = run_python(code, max_file_mb=8, disk_mb=32)
    if "mount" not in r.layers:
        pytest.skip("no private tmpfs without the mount layer")
    assert not r.ok and "No space left" in r.stderr


@pytest.mark.parametrize("mode", MODES)
def test_sleep_forever_is_killed(mode, clean_tmp):
    t0 = time.monotonic()
    r = run_python("import time\nprint('sleeping', flush=True)\ntime.sleep(10 ** 6)", isolation=mode, timeout_s=1.5)
    assert r.timed_out and not r.ok and r.killed_reason == "timeout" and r.returncode is None
    assert r.stdout == "sleeping\n"  # output written before the kill is kept
    assert time.monotonic() - t0 < 5
    assert_nothing_left(r)


@pytest.mark.parametrize("mode", [m for m in MODES if m != "none"])
def test_detached_daemons_die_with_the_run(mode):
    code = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1000)
    os._exit(0)
print('parent done')
"""
    r = run_python(code, isolation=mode)
    if "pid" not in r.layers:
        pytest.skip("no PID namespace here")
    assert r.ok and r.stdout == "parent done\n"
    assert_nothing_left(r)


@pytest.mark.parametrize("mode", MODES)
def test_cannot_signal_the_caller(mode):
    me = os.getpid()
    r = run_python(f"import os, signal\nfor pid in (-1, {me}, {os.getppid()}):\n"
                   "    try:\n        os.kill(pid, signal.SIGKILL)\n        print('SENT', pid)\n"
                   "    except Exception as e:\n        print('DENIED', pid, type(e).__name__)", isolation=mode)
    assert "SENT" not in r.stdout
    assert os.getpid() == me  # still here


@pytest.mark.parametrize("mode", MODES)
def test_cpu_limit(mode):
    r = run_python("while True:\n    pass", timeout_s=10, cpu_s=1, isolation=mode)
    assert not r.ok and not r.timed_out
    assert r.killed_reason == "cpu" and r.returncode in (-24, -9)  # SIGXCPU, or SIGKILL at the hard limit
    assert r.duration_s < 5


def test_output_flood_keeps_only_tails():
    code = "import sys\nfor i in range(200000):\n    sys.stdout.write('%08d flood line\\n' % i)\nprint('END')"
    t0 = time.monotonic()
    r = run_python(code, output_limit=1000, timeout_s=20)
    assert r.ok
    assert len(r.stdout.encode()) <= 1000
    assert r.stdout.endswith("00199999 flood line\nEND\n")
    assert r.stdout_bytes == 200000 * 20 + 4
    assert time.monotonic() - t0 < 15


def test_invalid_arguments():
    with pytest.raises(ValueError, match="isolation"):
        run_python("pass", isolation="chroot")
    with pytest.raises(ValueError, match="timeout_s"):
        run_python("pass", timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        run_python("pass", memory_mb=16)


def test_namespaces_mode_demands_them():
    layers = isolation_layers()
    if {"net", "mount", "pid"} <= set(layers):
        r = run_python("print(1)", isolation="namespaces")
        assert r.ok and {"net", "mount", "pid"} <= set(r.layers)
    else:
        with pytest.raises(SandboxUnavailable):
            run_python("print(1)", isolation="namespaces")


def test_concurrent_runs_are_independent():
    results: list[SandboxResult] = []
    lock = threading.Lock()

    def one(i):
        r = run_python(f"print({i} * 2)")
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(int(r.stdout) for r in results) == [0, 2, 4, 6]
    assert len({r.run_id for r in results}) == 4
