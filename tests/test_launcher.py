"""The launcher against real processes: llama.cpp servers running the embedded model, and loopback stubs."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from helpers import process_alive, stub_server

from junto.errors import JuntoError, ServerStartError
from junto.pool.config import load_pool, parse_pool
from junto.pool.launcher import Launcher, group_members, probe
from junto.pool.models import model_path
from junto.pool.threads import BATCH_THREAD_FLAGS, THREAD_FLAGS, argv_flag, available_cores, pool_thread_plan


def embedded_like(name: str = "t", **launch) -> dict:
    return {"name": name, "deployments": [{"name": "smol", "backend": "llamacpp",
                                           "model": "embedded:smollm2-135m-instruct", "context_length": 512,
                                           "launch": {"n_threads": 1, **launch}}]}


def test_up_status_down_leaves_no_process(tmp_path):
    launcher = Launcher(parse_pool(embedded_like()), tmp_path)
    endpoints, started = launcher.up()
    assert started == ["smol"]
    rec = launcher.records()["smol"]
    assert probe(endpoints["smol"]) is not None
    (st,) = launcher.status()
    assert st.state == "running" and st.pid == rec.pid
    assert st.detail == "1 thread"  # the explicit launch.n_threads
    args = cmdline(rec.pid)
    assert argv_flag(args, THREAD_FLAGS) == "1" and argv_flag(args, BATCH_THREAD_FLAGS) == "1"
    # a second `up` adopts the running server instead of starting another
    endpoints2, started2 = launcher.up()
    assert started2 == [] and endpoints2 == endpoints and launcher.records()["smol"].pid == rec.pid
    assert launcher.down() == ["smol"]
    assert not process_alive(rec.pid)
    assert group_members(rec.pid) == []
    assert launcher.status()[0].state == "stopped"
    assert not list(tmp_path.glob("pools/t/*.json"))


def cmdline(pid: int) -> list[str]:
    return [c.decode() for c in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if c]


def test_pair_pool_shares_the_cores_and_says_so(tmp_path):
    pool = load_pool("embedded-pair")
    plan = pool_thread_plan(pool.deployments)
    assert set(plan) == {"smollm2-a", "smollm2-b"}
    if available_cores() <= 4:
        assert plan == {"smollm2-a": 1, "smollm2-b": 1}
    launcher = Launcher(pool, tmp_path)
    messages: list[str] = []
    try:
        launcher.up(progress=messages.append)
        for name, n in plan.items():
            args = cmdline(launcher.records()[name].pid)
            assert argv_flag(args, THREAD_FLAGS) == str(n)
            assert any(m.startswith(f"{name}: starting llamacpp server") and f"{n} thread" in m and "auto" in m
                       for m in messages), messages
            assert any(m.startswith(f"{name}: ready at") and f"({n} thread" in m for m in messages), messages
        assert {st.detail for st in launcher.status()} == {f"{n} thread{'s' if n != 1 else ''}" for n in plan.values()}
    finally:
        launcher.down()


def test_crash_at_start_reports_log_tail_and_cleans_up(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))  # a file llama.cpp cannot load
    pool = parse_pool({"name": "crash", "deployments": [{"name": "bad", "backend": "llamacpp", "model": str(bad)}]})
    launcher = Launcher(pool, tmp_path)
    with pytest.raises(ServerStartError) as err:
        launcher.up()
    assert "exited with code" in err.value.message
    assert err.value.log_tail.strip(), "the error carries the server's last log lines"
    assert launcher.records() == {}


def test_missing_model_file_is_a_config_error(tmp_path):
    pool = parse_pool({"name": "m", "deployments": [{"name": "x", "backend": "llamacpp", "model": str(tmp_path / "no.gguf")}]})
    with pytest.raises(JuntoError) as err:
        Launcher(pool, tmp_path).up()
    assert "model file not found" in err.value.message and err.value.exit_code == 2
    assert Launcher(pool, tmp_path).records() == {}


def test_fixed_port_in_use_by_non_server_is_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        launcher = Launcher(parse_pool(embedded_like(port=port)), tmp_path)
        with pytest.raises(JuntoError) as err:
            launcher.up()
    assert f"port {port}" in err.value.message and "launch.port" in err.value.hint
    assert launcher.records() == {}


def test_adopts_server_already_listening_on_fixed_port(tmp_path):
    with stub_server() as (url, proc):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        launcher = Launcher(parse_pool(embedded_like(port=port)), tmp_path)
        endpoints, started = launcher.up()
        assert started == [] and endpoints["smol"] == url
        assert launcher.status()[0].detail == "adopted"
        # down forgets an adopted server but never kills it
        assert launcher.down() == []
        assert proc.poll() is None


def test_dead_server_is_reported_and_restarted(tmp_path):
    launcher = Launcher(parse_pool(embedded_like()), tmp_path)
    launcher.up()
    pid = launcher.records()["smol"].pid
    os.kill(pid, 9)
    deadline = time.monotonic() + 5
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert launcher.status()[0].state == "dead"
    _, started = launcher.up()
    assert started == ["smol"] and launcher.records()["smol"].pid != pid
    launcher.down()


def test_external_endpoint_status(tmp_path):
    with stub_server() as (url, _):
        pool = parse_pool({"name": "ext", "deployments": [{"name": "s", "backend": "openai", "model": "m", "url": url}]})
        assert Launcher(pool, tmp_path).status()[0].state == "external"
    assert Launcher(pool, tmp_path).status()[0].state == "unreachable"


def test_embedded_model_is_cached_and_verified(embedded_pool):
    from junto.pool.models import verify

    assert model_path("smollm2-135m-instruct").is_file()
    assert verify("smollm2-135m-instruct")
