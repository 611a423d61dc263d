"""Run model-written Python in a sandboxed subprocess: :func:`run_python`.

One entry point, ``run_python(code, *, timeout_s, memory_mb, max_file_mb, disk_mb, max_procs, ...)``, returns a
:class:`SandboxResult` (``ok``, ``returncode``, the tails of stdout and stderr, ``timed_out``, ``killed_reason``,
``layers``). The code runs in a fresh process of this machine's base Python interpreter, never in the caller's.

**Layers** (``SandboxResult.layers`` says which were active for a run; :func:`isolation_layers` probes once):

* ``rlimits`` (always): address space (``memory_mb``), CPU seconds (the timeout, rounded up; SIGXCPU then SIGKILL),
  the size of any one file written (``max_file_mb``), processes and threads (``max_procs``), open files, no core
  dumps, no locked memory, no message queues. The wall-clock ``timeout_s`` is enforced by the caller (and again by
  the sandbox's own init process, should the caller die).
* ``net``: a new network namespace. It has only a loopback interface, which is down: no connection to anything,
  including the host's own loopback services and abstract Unix sockets.
* ``mount``: a new mount namespace whose root is an empty read-only tmpfs holding only read-only bind mounts of
  ``/usr`` (and the ``/bin``, ``/lib*``, ``/sbin`` links or directories), the Python installation the code runs on,
  ``/etc/ld.so.cache``, a few devices (null, zero, full, random, urandom) and a fresh ``/proc``; the host's root is
  detached (``pivot_root``), so the project, the user's home, ``/tmp``, ``/run``, ``/etc`` and everything else are
  not reachable by any path. The program's own directory, ``/sandbox`` (cwd, ``HOME`` and ``TMPDIR``; ``/tmp``
  points there), is a private tmpfs of ``disk_mb`` that vanishes with the run.
* ``pid``: a new PID namespace whose init is the sandbox's own small supervisor: the code sees only its own
  processes, cannot signal or ptrace anything outside, and when the code's main process ends (or the caller kills
  the run) the kernel kills every process left in the namespace, daemonized ones included. ``ipc`` and ``uts``
  namespaces come with it.
* ``user`` or ``uid``: who the code runs as. As root: a fresh unprivileged uid per run (``uid``; so the process
  limit counts only this run's processes and no other process is the code's to signal), with every capability
  dropped. As another user: a user namespace (``user``), nested once more for the code so it holds no capability
  over the namespaces built for it. ``no_new_privs`` is set either way.
* ``audit`` (only when ``net`` or ``mount`` could not be had): a ``sys.addaudithook`` hook inside the child that
  refuses sockets, subprocesses, ``fork``, signals, ``ctypes``, and file access outside the program's directory and
  the Python installation. This is a speed bump for honest mistakes, *not* a security boundary: code that finds a
  way around the audit events is not stopped by it.

With ``isolation="auto"`` (the default) the best layers this machine allows are used and named in ``layers``;
``"namespaces"`` refuses to run (:class:`SandboxUnavailable`) unless ``net``, ``mount`` and ``pid`` are all active;
``"userns"`` forces the user-namespace path even as root (the path unprivileged users get); ``"none"`` uses only
rlimits, a separate session and the audit hook.

The order matters: the supervisor (PID 1 of the new PID namespace) first forks the code's process, which drops
its privileges at once (its own uid, or the nested user namespace) and waits; only then is the view built and the
code let go, with every inherited descriptor but stdin, stdout and stderr closed. ``python -m junto.sandbox``
prints the layers this machine gives.

The environment is replaced, not filtered: only ``PATH``, ``HOME``, ``TMPDIR``, ``LANG``/``LC_ALL`` (C.UTF-8),
``PYTHONHASHSEED=0`` (grading is deterministic; the reason the code's interpreter runs with ``-S -s -P`` on an
environment that is entirely ours rather than ``-I``, which would ignore the seed) and ``JUNTO_SANDBOX_RUN`` (the
run's id). No site-packages: the standard library only. The supervisor's own interpreter runs with ``-I -S``.

**Defends against**: reading or writing the caller's files, the project or the user's home (``mount``); network
access (``net``); fork bombs (``max_procs``); memory exhaustion (``memory_mb`` per process, so at most
``max_procs × memory_mb`` in all, plus the tmpfs's ``disk_mb``); huge files and filling the disk (``max_file_mb``,
``disk_mb``); endless loops and sleeps (the wall timeout, CPU limit); processes left behind (the PID namespace, its
process group killed with SIGKILL at the end, a parent-death signal); signalling or tracing the caller (``pid``,
``uid``/``user``, a non-dumpable init); unbounded output (only the last ``output_limit`` bytes of each stream are
kept, read in linear time).

**Does not defend against**: kernel vulnerabilities (there is no seccomp filter: the full system-call surface is
there); reading what the mount view does show (world-readable files under ``/usr`` and the Python installation,
kernel information in ``/proc`` such as ``/proc/cpuinfo``); CPU and memory-bandwidth contention with the caller
(no cgroup: the code shares the cores until its time is up); side channels and timing. In the ``none`` mode (no
namespaces available) it defends only by rlimits and the bypassable audit hook.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import signal
import sys
from dataclasses import dataclass, field

#: the first argument that makes this file run as the sandbox's supervisor (see :func:`_child_main`)
CHILD_FLAG = "--junto-sandbox-child"
ISOLATIONS = ("auto", "namespaces", "userns", "none")

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
#: pivot_root(2) has no libc wrapper; its number per architecture (others fall back to MS_MOVE + chroot)
SYS_PIVOT_ROOT = {"x86_64": 155, "amd64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203,
                  "ppc64": 203, "s390x": 217, "i686": 217, "i386": 217}
#: the uid the code runs as when the caller is root: a fresh one per run, in this range
ROOT_UID_BASE, ROOT_UID_SPAN = 2_000_000_000, 1 << 24
EXIT_SETUP = 125  # the supervisor could not set the sandbox up

SANDBOX_DIR = "/sandbox"


class SandboxUnavailable(RuntimeError):
    """The isolation asked for (``isolation="namespaces"`` or ``"userns"``) cannot be had on this machine."""


@dataclass(frozen=True)
class SandboxResult:
    """What one run did. ``ok``: exited 0 within its limits. ``returncode``: the code's exit status (negative:
    killed by that signal; None when it never got to run). ``stdout``/``stderr``: the last ``output_limit`` bytes
    of each, decoded as UTF-8; ``stdout_bytes``/``stderr_bytes`` the totals written. ``killed_reason``:
    ``"timeout"`` (wall clock), ``"cpu"`` (CPU seconds), ``"file_size"``, ``"signal SIGxxx"``, or None.
    ``layers``: the isolation layers that were active (see the module docstring). ``notes``: why a layer is
    missing, when one is. ``run_id``: the run's ``JUNTO_SANDBOX_RUN`` value."""

    ok: bool
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None
    duration_s: float
    layers: tuple[str, ...] = ()
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    run_id: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.ok


# -- the caller's side ---------------------------------------------------------------------------------------------

def _base_python() -> str:
    """The base interpreter (not a venv's launcher), so no site-packages and no venv directory are needed."""
    exe = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(exe)


class _Tail:
    """The last ``limit`` bytes of a stream, kept in amortized linear time."""

    def __init__(self, limit: int):
        self.limit, self.buf, self.total = limit, bytearray(), 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        self.buf += data
        if len(self.buf) > 2 * self.limit:
            del self.buf[:-self.limit]

    def text(self) -> str:
        return bytes(self.buf[-self.limit:] if self.limit else b"").decode("utf-8", "replace")


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def run_python(code: str, *, timeout_s: float = 10.0, memory_mb: int = 512, max_file_mb: int = 16,
               disk_mb: int = 64, max_procs: int = 32, max_open_files: int = 64, output_limit: int = 64 * 1024,
               cpu_s: float | None = None, isolation: str = "auto") -> SandboxResult:
    """Run ``code`` (a Python program) in the sandbox described in this module's docstring; never raises for
    anything the code does. Raises :class:`SandboxUnavailable` only when ``isolation`` demands layers this
    machine cannot give, and ValueError for invalid limits.

    ``timeout_s``: wall clock for the whole run. ``cpu_s``: CPU seconds per process (default: ``timeout_s``).
    ``memory_mb``: address space per process. ``max_file_mb``: largest file. ``disk_mb``: the private directory's
    size (with the ``mount`` layer). ``max_procs``: processes and threads. ``output_limit``: bytes kept of each
    of stdout and stderr (the last ones)."""
    import secrets
    import selectors
    import shutil
    import subprocess
    import tempfile
    import time

    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, not {isolation!r}")
    cpu_s = timeout_s if cpu_s is None else cpu_s
    for name, v in (("timeout_s", timeout_s), ("cpu_s", cpu_s), ("memory_mb", memory_mb),
                    ("max_file_mb", max_file_mb), ("disk_mb", disk_mb), ("max_procs", max_procs),
                    ("max_open_files", max_open_files)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name} must be a positive number, not {v!r}")
    if memory_mb < 64:
        raise ValueError("memory_mb must be at least 64 (the interpreter itself needs ~30 MB of address space)")
    if max_open_files < 16:
        raise ValueError("max_open_files must be at least 16")
    run_id = secrets.token_hex(8)
    host = tempfile.mkdtemp(prefix="junto-sandbox-")
    start = time.monotonic()
    status_r = status_w = -1
    proc = None
    try:
        os.chmod(host, 0o700)
        with open(os.path.join(host, "main.py"), "wb") as fh:
            fh.write(code.encode("utf-8", "surrogatepass") if isinstance(code, str) else bytes(code))
        os.mkdir(os.path.join(host, "root"))
        status_r, status_w = os.pipe()
        cfg = {"run_id": run_id, "host": host, "python": _base_python(), "status_fd": status_w,
               "ppid": os.getpid(), "isolation": isolation, "timeout_s": float(timeout_s), "cpu_s": float(cpu_s),
               "memory_mb": int(memory_mb), "max_file_mb": int(max_file_mb), "disk_mb": int(disk_mb),
               "max_procs": int(max_procs), "max_open_files": int(max_open_files),
               "uid": (ROOT_UID_BASE + secrets.randbelow(ROOT_UID_SPAN)) if os.geteuid() == 0 else None}
        proc = subprocess.Popen(
            [cfg["python"], "-I", "-S", "-B", os.path.realpath(__file__), CHILD_FLAG, json.dumps(cfg)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=host,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "JUNTO_SANDBOX_RUN": run_id},
            start_new_session=True, pass_fds=(status_w,), close_fds=True)
        os.close(status_w)
        status_w = -1
        out, err, status = _Tail(output_limit), _Tail(output_limit), _Tail(1 << 16)
        sinks = {proc.stdout.fileno(): out, proc.stderr.fileno(): err, status_r: status}
        deadline = start + float(timeout_s)
        timed_out = False
        with selectors.DefaultSelector() as sel:
            for fd in sinks:
                os.set_blocking(fd, False)
                sel.register(fd, selectors.EVENT_READ)
            streams = {proc.stdout.fileno(), proc.stderr.fileno()}
            while streams:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                for key, _ in sel.select(left):
                    try:
                        data = os.read(key.fd, 1 << 16)
                    except BlockingIOError:
                        continue
                    if data:
                        sinks[key.fd].add(data)
                    else:
                        sel.unregister(key.fd)
                        streams.discard(key.fd)
        # the supervisor's process group holds every process of the run (its init takes the namespace with
        # it); kill it before reaping the supervisor, so the group id cannot have been reused
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        try:
            while data := os.read(status_r, 1 << 16):
                status.add(data)
        except BlockingIOError:
            pass
        msgs = []
        for line in status.buf.decode("utf-8", "replace").splitlines():
            try:
                msgs.append(json.loads(line))
            except ValueError:
                continue
        layers: tuple[str, ...] = ()
        notes: list[str] = []
        exit_msg = None
        for m in msgs:
            if "layers" in m:
                layers = tuple(m["layers"])
            if "note" in m:
                notes.append(str(m["note"]))
            if "exit" in m:
                exit_msg = m["exit"]
            if "error" in m and isolation in ("namespaces", "userns"):
                raise SandboxUnavailable(str(m["error"]))
            if "error" in m:
                notes.append(str(m["error"]))
        if "pid" not in layers:
            _kill_strays(run_id, cfg["uid"] if "uid" in layers else None)
        if exit_msg is not None:
            returncode = -int(exit_msg["signal"]) if "signal" in exit_msg else int(exit_msg["code"])
        elif timed_out:
            returncode = None
        else:
            returncode = proc.returncode
        reason = None
        if timed_out:
            reason = "timeout"
        elif returncode is not None and returncode < 0:
            sig = -returncode
            reason = {signal.SIGXCPU: "cpu", signal.SIGXFSZ: "file_size"}.get(sig, f"signal {_signal_name(sig)}")
            if sig == signal.SIGKILL and exit_msg and exit_msg.get("cpu_s", 0) >= int(-(-cpu_s // 1)):
                reason = "cpu"
        return SandboxResult(ok=(not timed_out and returncode == 0), returncode=returncode, stdout=out.text(),
                             stderr=err.text(), timed_out=timed_out, killed_reason=reason,
                             duration_s=round(time.monotonic() - start, 4), layers=layers,
                             stdout_bytes=out.total, stderr_bytes=err.total, run_id=run_id, notes=tuple(notes))
    finally:
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
        if proc is not None:
            for f in (proc.stdout, proc.stderr):
                if f is not None:
                    f.close()
        for fd in (status_r, status_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        shutil.rmtree(host, ignore_errors=True)


def _kill_strays(run_id: str, uid: int | None) -> None:
    """Without a PID namespace: SIGKILL any process of this run that left its process group (found by the run's
    own uid when there is one, else by its ``JUNTO_SANDBOX_RUN`` environment entry)."""
    marker = f"JUNTO_SANDBOX_RUN={run_id}".encode()
    for _ in range(3):
        found = False
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if uid is not None:
                    with open(f"/proc/{d}/status", "rb") as fh:
                        mine = any(line.startswith(b"Uid:") and int(line.split()[1]) == uid for line in fh)
                else:
                    with open(f"/proc/{d}/environ", "rb") as fh:
                        mine = marker in fh.read().split(b"\0")
                if mine:
                    os.kill(int(d), signal.SIGKILL)
                    found = True
            except (OSError, ValueError, IndexError):
                continue
        if not found:
            return


_LAYERS: tuple[str, ...] | None = None


def isolation_layers() -> tuple[str, ...]:
    """The layers ``run_python(..., isolation="auto")`` gets on this machine (probed once per process)."""
    global _LAYERS
    if _LAYERS is None:
        _LAYERS = run_python("pass", timeout_s=30).layers
    return _LAYERS


# -- the sandbox's side (runs as `python -I -S sandbox.py --junto-sandbox-child CONFIG`) ----------------------------

_PRELUDE = r'''
import os, sys, runpy
def _install(block_net, read_roots, write_root):
    real, sep, fsdecode = os.path.realpath, os.sep, os.fsdecode
    blocked = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                         "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "os.putenv", "ctypes.dlopen",
                         "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.cdata", "ctypes.call_function",
                         "ctypes.addressof", "ctypes.string_at", "ctypes.wstring_at"})
    bad_modules = frozenset({"_ctypes", "ctypes", "_posixsubprocess", "_xxsubinterpreters", "_testcapi",
                             "_testinternalcapi", "_xxtestfuzz"})
    reading = frozenset({"os.listdir", "os.scandir", "os.chdir", "glob.glob"})
    paths = frozenset({"open", "os.listdir", "os.scandir", "os.chdir", "os.remove", "os.rename", "os.rmdir",
                       "os.mkdir", "os.symlink", "os.link", "os.truncate", "os.chmod", "os.chown", "os.utime",
                       "shutil.copyfile", "shutil.copytree", "shutil.rmtree", "shutil.move", "glob.glob"})
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    def inside(p, roots):
        return any(p == r or p.startswith(r + sep) for r in roots)
    def hook(event, args):
        if event in blocked or (block_net and event.startswith("socket.")):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args and args[0] in bad_modules:
            raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
        if read_roots is None or event not in paths or not args:
            return
        path = args[0]
        if path is None or isinstance(path, int):
            return
        p = real(fsdecode(path))
        if event == "open":
            mode, flags = (args[1] if len(args) > 1 else None), (args[2] if len(args) > 2 else 0)
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & write_flags)
        else:
            writes = event not in reading
        if not inside(p, (write_root,) if writes else read_roots):
            raise PermissionError(f"sandbox: {event} {p!r} is outside the sandbox")
    sys.addaudithook(hook)
_cfg = __import__("json").loads(sys.argv[1])
_path = sys.argv[2]
sys.argv = [_path]
_install(_cfg["block_net"], _cfg["read_roots"], _cfg["write_root"])
del _install, _cfg
runpy.run_path(_path, run_name="__main__")
'''


def _libc():
    lib = ctypes.CDLL(None, use_errno=True)
    for name in ("unshare", "mount", "umount2", "prctl", "syscall", "chroot"):
        try:
            getattr(lib, name).restype = ctypes.c_int
        except AttributeError:
            pass
    return lib


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _mount(lib, src, dst, fstype, flags, data=None) -> None:
    enc = (lambda s: None if s is None else os.fsencode(s))
    _check(lib.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {dst}")


def _report(fd: int, **msg) -> None:
    try:
        os.write(fd, (json.dumps(msg) + "\n").encode())
    except OSError:
        pass


def _tasks_of(uid: int) -> int:
    """How many tasks (threads) ``uid`` runs now: what RLIMIT_NPROC counts for it."""
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/status", "rb") as fh:
                    fields = dict(line.split(b":", 1) for line in fh if b":" in line)
                if int(fields[b"Uid"].split()[1]) == uid:
                    n += int(fields[b"Threads"])
            except (OSError, KeyError, ValueError, IndexError):
                continue
    return n


def _set_limits(cfg: dict, *, shared_uid: bool = False) -> None:
    """The run's rlimits. ``shared_uid``: the code runs as the caller's own uid outside any user namespace, where
    the process limit counts every task of that uid, so it gets ``max_procs`` on top of those."""
    cpu = int(-(-cfg["cpu_s"] // 1))
    mib = 1024 * 1024
    limits = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_AS, cfg["memory_mb"] * mib),
              (resource.RLIMIT_FSIZE, cfg["max_file_mb"] * mib), (resource.RLIMIT_NOFILE, cfg["max_open_files"]),
              (resource.RLIMIT_MEMLOCK, 0)]
    if hasattr(resource, "RLIMIT_MSGQUEUE"):
        limits.append((resource.RLIMIT_MSGQUEUE, 0))
    for res, value in limits:
        resource.setrlimit(res, (value, value))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    nproc = cfg["max_procs"] + (_tasks_of(os.getuid()) if shared_uid else 0)
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _drop_to(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _code_env(cfg: dict, home: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "PYTHONHASHSEED": "0", "JUNTO_SANDBOX_RUN": cfg["run_id"]}


def _code_argv(cfg: dict, script: str, hooks: dict | None) -> list[str]:
    base = [cfg["python"], "-S", "-s", "-P", "-B", "-u"]
    if hooks is None:
        return base + [script]
    return base + ["-c", _PRELUDE, json.dumps(hooks), script]


def _write_map(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _bind(lib, src: str, dst: str, *, writable_dev: bool = False) -> None:
    """Bind ``src`` on ``dst`` (both exist) and make it read-only, nosuid (and nodev unless a device)."""
    _mount(lib, src, dst, None, MS_BIND | MS_REC)
    st = os.statvfs(dst).f_flag
    keep = st & (MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_NODEV)
    if st & 4096:  # ST_RELATIME
        keep |= MS_RELATIME
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | keep | (0 if writable_dev else MS_NODEV)
    _mount(lib, None, dst, None, flags)


def _build_root(lib, cfg: dict, srcs: dict[str, str], code_uid: int | None) -> list[str]:
    """Make the new root under ``<host>/root`` and switch to it. Returns the extra layers it got (``proc``)."""
    extra = []
    root = os.path.join(cfg["host"], "root")
    _mount(lib, None, "/", None, MS_REC | MS_PRIVATE)
    _mount(lib, "tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755")

    def target(path: str) -> str:
        return root + path

    for name in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), target(host))
        elif os.path.isdir(host):
            os.mkdir(target(host))
            _bind(lib, srcs.get(host, host), target(host))
    prefix = cfg["prefix"]
    if not (prefix == "/usr" or prefix.startswith("/usr/")):
        os.makedirs(target(prefix), exist_ok=True)
        _bind(lib, srcs.get(prefix, prefix), target(prefix))
    os.mkdir(target("/etc"))
    if os.path.isfile("/etc/ld.so.cache"):
        open(target("/etc/ld.so.cache"), "wb").close()
        _bind(lib, srcs.get("/etc/ld.so.cache", "/etc/ld.so.cache"), target("/etc/ld.so.cache"))
    os.mkdir(target("/dev"))
    for dev in ("null", "zero", "full", "random", "urandom"):
        if os.path.exists("/dev/" + dev):
            open(target("/dev/" + dev), "wb").close()
            _bind(lib, "/dev/" + dev, target("/dev/" + dev), writable_dev=True)
    for name, to in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                     ("stderr", "/proc/self/fd/2")):
        os.symlink(to, target("/dev/" + name))
    os.mkdir(target("/proc"))
    try:
        _mount(lib, "proc", target("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        extra.append("proc")
    except OSError:
        pass
    os.mkdir(target(SANDBOX_DIR))
    owner = f",uid={code_uid},gid={code_uid}" if code_uid is not None else ""
    _mount(lib, "tmpfs", target(SANDBOX_DIR), "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={cfg['disk_mb']}m,nr_inodes=16384,mode=0700{owner}")
    os.symlink(SANDBOX_DIR, target("/tmp"))
    main = target(SANDBOX_DIR + "/main.py")
    with open(main, "wb") as fh:
        fh.write(cfg["program"])
    if code_uid is not None:
        os.chown(main, code_uid, code_uid)
    _mount(lib, None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(root)
    nr = SYS_PIVOT_ROOT.get(platform.machine().lower())
    if nr is not None:
        _check(lib.syscall(ctypes.c_long(nr), b".", b"."), "pivot_root")
        _check(lib.umount2(b".", MNT_DETACH), "umount old root")
    else:  # switch_root's way: move the new root over / and enter it
        _mount(lib, ".", "/", None, 8192)  # MS_MOVE
        _check(lib.chroot(b"."), "chroot")
    os.chdir("/")
    return extra


def _init_main(lib, cfg: dict, kind: str, srcs: dict[str, str]) -> None:
    """PID 1 of the sandbox's PID namespace: starts the code's process (which drops its privileges at once and
    waits), builds the mount view, lets the code run, reaps, reports, exits (taking the namespace with it)."""
    status = cfg["status_fd"]
    code = EXIT_SETUP
    try:
        lib.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        lib.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGALRM, lambda *_: os._exit(137))  # the caller's deadline, should it die
        signal.alarm(int(cfg["timeout_s"]) + 3)
        layers = ["rlimits", "net", "pid", "ipc", "uts", "user" if kind == "userns" else "uid"]
        code_uid = cfg["uid"] if kind == "ns" else None
        if kind == "userns":
            os.setresgid(0, 0, 0)  # the namespace's root: the caller's uid, or the run's own uid for root
            os.setresuid(0, 0, 0)
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(status)
                os.close(ready_r)
                os.close(go_w)
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                signal.alarm(0)
                if kind == "userns":
                    _enter_code_userns(lib)  # while the host's /proc is still there to write the maps
                os.write(ready_w, b"1")
                os.close(ready_w)
                chunks = []
                while chunk := os.read(go_r, 1 << 16):
                    chunks.append(chunk)
                if not chunks:
                    os._exit(EXIT_SETUP)  # the supervisor gave up
                plan = json.loads(b"".join(chunks))
                _exec_code(lib, cfg, plan["script"], plan["cwd"], plan["hooks"])
            except BaseException as exc:  # noqa: BLE001
                try:
                    os.write(2, f"sandbox: could not start the code: {exc!r}\n".encode())
                finally:
                    os._exit(EXIT_SETUP)
        os.close(ready_w)
        os.close(go_r)
        if os.read(ready_r, 1) != b"1":
            _report(status, error="the code's process could not drop its privileges")
            os._exit(EXIT_SETUP)
        os.close(ready_r)
        hooks = None
        try:
            layers += ["mount"] + _build_root(lib, cfg, srcs, code_uid)
            script, cwd = SANDBOX_DIR + "/main.py", SANDBOX_DIR
        except OSError as exc:
            if cfg["isolation"] in ("namespaces", "userns"):
                _report(status, error=f"no mount isolation: {exc}")
                os._exit(EXIT_SETUP)
            _report(status, note=f"no mount isolation ({exc}); using the audit hook for files")
            layers.append("audit")
            script, cwd = os.path.join(cfg["host"], "main.py"), cfg["host"]
            hooks = {"block_net": False, "read_roots": _read_roots(cfg), "write_root": cfg["host"]}
        for handle in srcs.values():  # a directory handle from outside the view would be a way out of it
            os.close(int(handle.rsplit("/", 1)[1]))
        _report(status, layers=layers)
        os.write(go_w, json.dumps({"script": script, "cwd": cwd, "hooks": hooks}).encode())
        os.close(go_w)
        main_status = None
        while main_status is None:
            try:
                got, st = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if got == pid:
                main_status = st
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = round(cpu.ru_utime + cpu.ru_stime, 3)
        if main_status is None:
            msg = {"code": EXIT_SETUP}
        elif os.WIFSIGNALED(main_status):
            msg = {"signal": os.WTERMSIG(main_status)}
        else:
            msg = {"code": os.WEXITSTATUS(main_status)}
        _report(status, exit={**msg, "cpu_s": cpu_s})
        code = msg.get("code", 128 + msg.get("signal", 0))
    except BaseException as exc:  # noqa: BLE001 - report whatever went wrong, then leave
        _report(status, error=f"sandbox init failed: {exc!r}")
    os._exit(code)


def _reachable_by_others(*paths: str) -> bool:
    """Whether a uid with no rights of its own can reach and read ``paths`` (every parent searchable by others)."""
    import stat

    for path in paths:
        p = path
        while True:
            try:
                mode = os.stat(p).st_mode
            except OSError:
                return False
            need = stat.S_IXOTH | (stat.S_IROTH if p == path else 0)
            if mode & need != need:
                return False
            if p == "/":
                break
            p = os.path.dirname(p)
    return True


def _read_roots(cfg: dict) -> list[str]:
    roots = {cfg["host"], cfg["prefix"], "/dev/null", "/dev/urandom", "/dev/random", "/dev/zero"}
    return sorted(roots)


def _enter_code_userns(lib) -> None:
    """A nested user namespace for the code: it is uid 1000 there and holds no capability over the namespaces its
    supervisor built (it cannot unmount its view, mount over it, or raise the loopback)."""
    lib.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # /proc/self/*_map belong to root while we are not dumpable
    _check(lib.unshare(CLONE_NEWUSER), "unshare(user) for the code")
    _write_map("/proc/self/setgroups", "deny")
    _write_map("/proc/self/uid_map", "1000 0 1")
    _write_map("/proc/self/gid_map", "1000 0 1")


def _exec_code(lib, cfg: dict, script: str, cwd: str, hooks: dict | None, *, shared_uid: bool = False) -> None:
    """Become the code: the run's uid when still root, the limits, no new privileges, no inherited descriptor
    beyond stdin/stdout/stderr, then exec. Never returns; raises when a step fails."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if cfg["uid"] is not None and os.getuid() == 0:
        _drop_to(cfg["uid"])
    _set_limits(cfg, shared_uid=shared_uid)
    _check(lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.chdir(cwd)
    os.closerange(3, 1 << 20)
    os.execve(cfg["python"], _code_argv(cfg, script, hooks), _code_env(cfg, cwd))


def _enter_namespaces(lib, cfg: dict) -> str:
    """Unshare what we can. Returns the kind: ``ns`` (root: no user namespace; the code
    later drops to a fresh uid) or ``userns``. Raises OSError when neither works."""
    common = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if not hasattr(lib, "unshare") or not os.path.isdir("/proc/self"):
        raise OSError(38, "no unshare(2) here")
    if os.geteuid() == 0 and cfg["isolation"] != "userns":
        if lib.unshare(common) == 0:
            return "ns"
        if cfg["isolation"] == "namespaces":
            _check(-1, "unshare")
    if os.geteuid() == 0:
        # root without CAP_SYS_ADMIN (or asked for the user-namespace path): the new namespace's root is the run's
        # own uid, which only a process outside it may map; a short-lived helper does that once we have unshared
        os.setgroups([])
        r, w = os.pipe()
        me = os.getpid()
        helper = os.fork()
        if helper == 0:
            os.close(w)
            ok = os.read(r, 1) == b"1"
            try:
                if ok:
                    _write_map(f"/proc/{me}/uid_map", f"0 {cfg['uid']} 1")
                    _write_map(f"/proc/{me}/gid_map", f"0 {cfg['uid']} 1")
            except OSError:
                ok = False
            os._exit(0 if ok else 1)
        os.close(r)
        rc = lib.unshare(CLONE_NEWUSER | common)
        err = ctypes.get_errno()
        os.write(w, b"1" if rc == 0 else b"0")
        os.close(w)
        _, st = os.waitpid(helper, 0)
        if rc != 0:
            raise OSError(err, f"unshare(user, mount, net, pid, ipc, uts): {os.strerror(err)}")
        if not (os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0):
            raise OSError(1, "could not map the run's uid into the user namespace")
        return "userns"
    uid, gid = os.geteuid(), os.getegid()
    _check(lib.unshare(CLONE_NEWUSER | common), "unshare(user, mount, net, pid, ipc, uts)")
    _write_map("/proc/self/setgroups", "deny")
    _write_map("/proc/self/uid_map", f"0 {uid} 1")
    _write_map("/proc/self/gid_map", f"0 {gid} 1")
    return "userns"


def _child_main(argv: list[str]) -> None:
    cfg = json.loads(argv[0])
    status = cfg["status_fd"]
    try:
        lib = _libc()
        lib.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != cfg["ppid"]:
            os._exit(EXIT_SETUP)  # the caller is already gone
        lib.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        with open(os.path.join(cfg["host"], "main.py"), "rb") as fh:
            cfg["program"] = fh.read()
        cfg["prefix"] = os.path.realpath(sys.base_prefix)
        if cfg["uid"] is not None and os.geteuid() == 0:
            # the run's uid owns its directory (it is the cwd when there is no mount namespace)
            os.chown(cfg["host"], cfg["uid"], cfg["uid"])
            os.chown(os.path.join(cfg["host"], "main.py"), cfg["uid"], cfg["uid"])
        kind = None
        srcs: dict[str, str] = {}
        if cfg["isolation"] != "none":
            try:
                kind = _enter_namespaces(lib, cfg)
            except OSError as exc:
                if cfg["isolation"] in ("namespaces", "userns"):
                    _report(status, error=f"no namespaces: {exc}")
                    os._exit(EXIT_SETUP)
                _report(status, note=f"no namespaces ({exc}); rlimits and the audit hook only")
        if kind == "userns":
            # handles on what must be bound, taken now: the process that builds the view will be the namespace's
            # root (for a root caller: the run's own uid), which may not reach them by path (~root is 0700)
            for path in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", cfg["prefix"],
                         "/etc/ld.so.cache"):
                if os.path.exists(path) and not os.path.islink(path):
                    srcs[path] = f"/proc/self/fd/{os.open(path, os.O_PATH | os.O_CLOEXEC)}"
        if kind is not None:
            pid = os.fork()
            if pid == 0:
                _init_main(lib, cfg, kind, srcs)
            while True:
                try:
                    _, st = os.waitpid(pid, 0)
                    break
                except ChildProcessError:
                    os._exit(EXIT_SETUP)
            os._exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st))
        # no namespaces: limits, the run's uid when root, the audit hook; the code replaces this process
        if cfg["uid"] is not None and not _reachable_by_others(cfg["python"], cfg["prefix"]):
            _report(status, note="the interpreter is not reachable by another uid: the code runs as root")
            cfg["uid"] = None
        layers = ["rlimits", "audit"] + (["uid"] if cfg["uid"] is not None else [])
        _report(status, layers=layers)
        hooks = {"block_net": True, "read_roots": _read_roots(cfg), "write_root": cfg["host"]}
        try:
            _exec_code(lib, cfg, os.path.join(cfg["host"], "main.py"), cfg["host"], hooks,
                       shared_uid=cfg["uid"] is None and os.getuid() != 0)
        except BaseException as exc:  # noqa: BLE001
            os.write(2, f"sandbox: could not start the code: {exc!r}\n".encode())
            os._exit(EXIT_SETUP)
    except BaseException as exc:  # noqa: BLE001
        _report(status, error=f"sandbox setup failed: {exc!r}")
        os._exit(EXIT_SETUP)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == CHILD_FLAG:
        _child_main(sys.argv[2:])
    else:  # `python -m junto.sandbox`: which layers this machine gives
        print(json.dumps({"layers": list(isolation_layers()), "python": _base_python()}))
