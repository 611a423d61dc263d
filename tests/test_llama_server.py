"""llama.cpp's own llama-server as junto's llama.cpp server: the build step, the launch settings, the command
line, the missing-binary error, and the real server (built by `make install`) running the embedded model."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest
from junto.errors import ConfigError
from junto.pool import llamaserver_build as lsb
from junto.pool.backends import get_backend
from junto.pool.config import parse_pool
from junto.pool.launcher import Launcher, group_members, pid_alive
from junto.pool.threads import pool_thread_plan, threads_for

ROOT = Path(__file__).resolve().parents[1]
MODEL = "embedded:smollm2-135m-instruct"


def pool_with(name: str = "ls", *, max_concurrency: int = 4, context_length: int = 512, **launch):
    return parse_pool({"name": name, "deployments": [{
        "name": "smol", "backend": "llamacpp", "model": MODEL, "context_length": context_length,
        "max_concurrency": max_concurrency, "launch": launch}]}, "pool.yaml")


def fake_binary(tmp_path: Path) -> Path:
    exe = tmp_path / "llama-server"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return exe


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# -- the build step and where the binary is -----------------------------------------------------
def test_build_pins_the_same_llama_cpp_python_as_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    pins = re.findall(r"llama-cpp-python\[server\]==([0-9][^\"']*)", text)
    assert pins == [lsb.VERSION], "app/pool/llamaserver_build.VERSION must equal pyproject's llamacpp pin"


def test_build_configures_the_server_only_offline_and_portable(tmp_path):
    args = lsb.cmake_configure_args(tmp_path / "src", tmp_path / "build", ["-DEXTRA=1"])
    for want in ("-DGGML_NATIVE=OFF", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
                 "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF"):
        assert want in args
    assert args[-1] == "-DEXTRA=1"  # extra arguments come last, so they win


def test_makefile_install_builds_llama_server():
    text = (ROOT / "Makefile").read_text()
    assert re.search(r"^install:.*\$\(BIN\)/llama-server", text, re.MULTILINE)
    assert "python -m junto.pool.llamaserver_build" in text


def test_is_current_needs_the_record_the_version_and_the_same_bytes(tmp_path):
    exe = fake_binary(tmp_path)
    assert not lsb.is_current(exe)  # no build record
    record = {"package": lsb.PACKAGE, "version": lsb.VERSION, "sha256": lsb.sha256_file(exe), "extra_cmake_args": []}
    lsb.marker_path(exe).write_text(json.dumps(record))
    assert lsb.is_current(exe) and lsb.is_current(exe, []) and not lsb.is_current(exe, ["-DGGML_CUDA=ON"])
    lsb.marker_path(exe).write_text(json.dumps({**record, "version": "0.0.1"}))
    assert not lsb.is_current(exe)
    lsb.marker_path(exe).write_text(json.dumps(record))
    exe.write_text("#!/bin/sh\nexit 1\n")  # replaced behind junto's back
    assert not lsb.is_current(exe)


def test_build_is_a_no_op_when_current(tmp_path, monkeypatch):
    exe = fake_binary(tmp_path)
    lsb.marker_path(exe).write_text(json.dumps(
        {"package": lsb.PACKAGE, "version": lsb.VERSION, "sha256": lsb.sha256_file(exe), "extra_cmake_args": []}))
    monkeypatch.delenv(lsb.ENV_CMAKE_ARGS, raising=False)
    monkeypatch.setattr(lsb, "download_sdist", lambda *a: pytest.fail("a current build must not download"))
    info = lsb.build(tmp_path)
    assert info["already"] is True and info["binary"] == str(exe)


# -- launch settings -----------------------------------------------------------------------------
def test_llama_server_is_the_default_and_the_other_stays_selectable():
    assert pool_with().deployments[0].launch.server == "llama-server"
    assert pool_with(server="llama-cpp-python").deployments[0].launch.server == "llama-cpp-python"
    for name in ("embedded", "embedded-pair"):
        from junto.pool.config import load_pool

        assert all(d.launch.server == "llama-server" for d in load_pool(name).deployments)


def test_unknown_server_is_refused_with_the_choices():
    with pytest.raises(ConfigError) as err:
        pool_with(server="ollama")
    msg = str(err.value)
    assert "pool.yaml" in msg and "launch.server" in msg and "llama-server" in msg and "llama-cpp-python" in msg
    assert "'ollama'" in msg


def test_server_binary_only_with_llama_server():
    with pytest.raises(ConfigError, match="server_binary"):
        pool_with(server="llama-cpp-python", server_binary="/usr/bin/true")


# -- the command line -------------------------------------------------------------------------------
@pytest.fixture
def fake_server(tmp_path, monkeypatch):
    exe = fake_binary(tmp_path)
    monkeypatch.setenv(lsb.ENV_BINARY, str(exe))
    return exe


def argv_of(pool) -> list[str]:
    dep = pool.deployments[0]
    return get_backend("llamacpp").command(dep, "127.0.0.1", 8123, None, lambda _m: None)[0]


def test_command_line_slots_context_threads(fake_server):
    argv = argv_of(pool_with(max_concurrency=8, context_length=1024, n_threads=3))
    assert argv[0] == str(fake_server)
    assert flag(argv, "--parallel") == "8" and flag(argv, "--ctx-size") == str(8 * 1024)  # context per slot × slots
    assert flag(argv, "--threads") == "3" and flag(argv, "--threads-batch") == "3"
    assert flag(argv, "--host") == "127.0.0.1" and flag(argv, "--port") == "8123" and flag(argv, "--alias") == "smol"
    assert "--cont-batching" in argv and "--cache-prompt" in argv
    assert flag(argv, "--reasoning-format") == "none"
    assert "--repeat-penalty" not in argv  # llama-server's default (none), as OpenAI and vLLM
    assert flag(argv, "--cors-origins") == "localhost" and "--no-cors-credentials" in argv


def test_command_line_auto_threads_and_batch_threads(fake_server):
    argv = argv_of(pool_with())
    assert flag(argv, "--threads") == str(threads_for("auto")) == flag(argv, "--threads-batch")
    argv = argv_of(pool_with(n_threads=2, n_threads_batch=5))
    assert flag(argv, "--threads") == "2" and flag(argv, "--threads-batch") == "5"


def test_command_line_chat_template_and_extra_args_last(fake_server):
    argv = argv_of(pool_with(chat_format="chatml", extra_args=["--parallel", "2"], env={"A": "1"}))
    assert flag(argv, "--chat-template") == "chatml"
    assert argv[-2:] == ["--parallel", "2"]
    dep = pool_with(env={"A": "1"}).deployments[0]
    assert get_backend("llamacpp").command(dep, "127.0.0.1", 1, None, lambda _m: None)[1] == {"A": "1"}


def test_llama_cpp_python_stays_selectable(fake_server):
    pytest.importorskip("llama_cpp")
    argv = argv_of(pool_with(server="llama-cpp-python", n_threads=2))
    assert argv[1:3] == ["-m", "llama_cpp.server"] and flag(argv, "--n_threads") == "2"


def test_backend_knows_the_slot_limit_of_n(fake_server):
    backend = get_backend("llamacpp")
    assert backend.native_n is False  # n > slots is an HTTP 400 on llama-server: the client splits n by slots
    assert backend.max_native_n(pool_with(max_concurrency=6).deployments[0]) == 6
    assert backend.max_native_n(pool_with(server="llama-cpp-python").deployments[0]) == 1


# -- the missing-binary error ----------------------------------------------------------------------
def test_missing_binary_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.delenv(lsb.ENV_BINARY, raising=False)
    monkeypatch.setattr(lsb, "candidates", lambda: [tmp_path / "nowhere" / "llama-server"])
    launcher = Launcher(pool_with("missing"), tmp_path)
    with pytest.raises(ConfigError) as err:
        launcher.up()
    assert "llama-server is not installed" in err.value.message
    assert "make install" in err.value.hint and "python -m junto.pool.llamaserver_build" in err.value.hint
    assert "launch.server: llama-cpp-python" in err.value.hint
    assert launcher.records() == {}  # nothing started, nothing recorded


def test_a_named_binary_that_is_not_there_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv(lsb.ENV_BINARY, raising=False)
    with pytest.raises(ConfigError, match="launch.server_binary names .*/nope"):
        argv_of(pool_with(server_binary=str(tmp_path / "nope")))
    monkeypatch.setenv(lsb.ENV_BINARY, str(tmp_path / "nope2"))
    with pytest.raises(ConfigError, match=r"\$JUNTO_LLAMA_SERVER names .*/nope2"):
        argv_of(pool_with())


# -- the real llama-server with the embedded model --------------------------------------------------
def built_binary() -> Path | None:
    try:
        return lsb.find_binary()
    except ConfigError:
        return None


requires_binary = pytest.mark.skipif(
    built_binary() is None and not os.environ.get("JUNTO_REQUIRE_LLAMA_SERVER"),
    reason=f"llama-server is not built: {lsb.missing_hint()}")

SLOTS = 4


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """One llama-server (4 slots) running the embedded model for this module; stopped at the end."""
    root = tmp_path_factory.mktemp("llama-server-state")
    pool = pool_with("llama-server-test", max_concurrency=SLOTS, context_length=1024)
    launcher = Launcher(pool, root)
    endpoints, _ = launcher.up()
    rec = launcher.records()["smol"]
    try:
        yield pool, endpoints["smol"], rec
    finally:
        launcher.down()
        assert not pid_alive(rec.pid) and group_members(rec.pid) == [], "llama-server left running after down"


Q = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.mark.llamacpp
@requires_binary
async def test_real_server_answers_and_streams_with_usage(real_server):
    from junto.pool.client import PoolClient
    from junto.pool.types import StreamDelta, StreamEnd

    pool, url, _ = real_server
    async with PoolClient(pool, {"smol": url}) as client:
        r = await client.chat("smol", Q, max_tokens=16, temperature=0)
        assert r.path == "single" and "paris" in r.text.lower()
        assert r.usage.prompt_tokens > 5 and 0 < r.usage.completion_tokens <= 16 and not r.usage.estimated
        deltas, ends = [], []
        async for ev in client.stream("smol", Q, max_tokens=16, temperature=0):
            (deltas if isinstance(ev, StreamDelta) else ends).append(ev)
        (end,) = ends
        assert isinstance(end, StreamEnd) and "".join(d.text for d in deltas).strip()
        assert not end.usage.estimated, "llama-server reports usage in streams"
        assert end.usage.prompt_tokens == r.usage.prompt_tokens and end.usage.completion_tokens >= len(deltas) - 1
        # n up to the slots: one request; its usage counts only the first choice, junto counts them all
        r = await client.chat("smol", [{"role": "user", "content": "Name a random animal."}], n=3, max_tokens=8,
                              temperature=1.0)
        assert r.path == "native-n" and r.requests == 1 and len(r.choices) == 3 and not r.usage.estimated
        assert [c.index for c in r.choices] == [0, 1, 2] and all(c.token_logprobs is None for c in r.choices)


@pytest.mark.llamacpp
@requires_binary
async def test_n_beyond_the_slots_is_split_and_every_choice_counted(real_server):
    """llama-server refuses n > slots and counts only the first choice's tokens: junto sends n in requests
    of at most `slots` choices and counts each choice's tokens from its logprobs — equal to the tokens the
    server itself counts for each text."""
    from junto.pool.client import PoolClient

    pool, url, _ = real_server
    async with PoolClient(pool, {"smol": url}) as client:
        # a long answer asked for, 6 tokens allowed: every choice is cut at exactly 6 tokens
        r = await client.chat("smol", [{"role": "user", "content": "Write a long story about the sea."}],
                              n=SLOTS + 2, max_tokens=6, temperature=1.0, seed=7)
        assert r.path == "native-n" and r.requests == 2 and len(r.choices) == SLOTS + 2
        assert [c.index for c in r.choices] == list(range(SLOTS + 2)) and not r.usage.estimated
        assert [c.finish_reason for c in r.choices] == ["length"] * (SLOTS + 2)
        assert r.usage.completion_tokens == 6 * (SLOTS + 2)  # the server's usage alone says 6 per request
        assert len({c.text for c in r.choices}) > 1, "the choices are distinct samples"
        with_lp = await client.chat("smol", [{"role": "user", "content": "Say hi."}], n=2, max_tokens=4,
                                    temperature=1.0, logprobs=True)
        assert all(c.token_logprobs and len(c.token_logprobs) <= 4 for c in with_lp.choices)


@pytest.mark.llamacpp
@requires_binary
def test_real_server_runs_the_planned_threads_and_slots(real_server):
    pool, url, rec = real_server
    args = [c.decode() for c in Path(f"/proc/{rec.pid}/cmdline").read_bytes().split(b"\0") if c]
    expected = pool_thread_plan(pool.deployments)["smol"]
    assert flag(args, "--threads") == str(expected) == flag(args, "--threads-batch")
    assert flag(args, "--parallel") == str(SLOTS)
    meta = httpx.get(f"{url}/models", timeout=5).json()["data"][0]
    assert meta["id"] == "smol" and meta["meta"]["n_ctx"] == 1024  # each slot gets the deployment's context


@pytest.mark.llamacpp
@requires_binary
def test_real_server_honours_n_up_to_its_slots(real_server):
    _, url, _ = real_server
    body = {"model": "smol", "messages": Q, "max_tokens": 4, "temperature": 1.0}
    r = httpx.post(f"{url}/chat/completions", json={**body, "n": 2}, timeout=60)
    assert r.status_code == 200 and len(r.json()["choices"]) == 2
    r = httpx.post(f"{url}/chat/completions", json={**body, "n": SLOTS + 1}, timeout=60)
    assert r.status_code == 400  # why junto's client fans out instead of sending n


@pytest.mark.llamacpp
@pytest.mark.slow
@requires_binary
async def test_real_server_serves_concurrent_requests_in_parallel_slots(real_server):
    """4 concurrent streamed answers decode together: every one has its first token before any one ends.

    A server that answers one request at a time (llama-cpp-python's) cannot do that: its second answer
    starts after the first has ended. Structural, so it holds however loaded the machine is.
    """
    from junto.pool.client import PoolClient
    from junto.pool.types import StreamDelta, StreamEnd

    pool, url, _ = real_server
    prompts = [[{"role": "user", "content": f"Write a story about {t}."}] for t in ("a cat", "a ship", "rain", "a key")]

    async def one(client, i, msgs):
        first = end = None
        tokens = 0
        async for ev in client.stream("smol", msgs, max_tokens=48, temperature=0.7, seed=2 + i,
                                      extra={"ignore_eos": True}):
            if isinstance(ev, StreamDelta) and first is None:
                first = time.perf_counter()
            elif isinstance(ev, StreamEnd):
                end, tokens = time.perf_counter(), ev.usage.completion_tokens
        return first, end, tokens

    async with PoolClient(pool, {"smol": url}) as client:
        await client.chat("smol", prompts[0], max_tokens=4)  # warm-up
        runs = await asyncio.gather(*(one(client, i, p) for i, p in enumerate(prompts)))
    assert all(tokens == 48 for _, _, tokens in runs)
    assert max(first for first, _, _ in runs) < min(end for _, end, _ in runs), runs
