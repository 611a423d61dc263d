"""The `junto` CLI through real subprocesses, against the real embedded llama.cpp server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import free_port, process_alive, run_cli, stub_server


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def servers_with_state_dir(state: Path) -> list[int]:
    """Live llama.cpp server processes started with JUNTO_STATE_DIR=state."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (entry / "cmdline").read_bytes()
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if (b"llama_cpp.server" in cmd or b"llama-server" in cmd) and f"JUNTO_STATE_DIR={state}".encode() in env.split(b"\0"):
            if process_alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def test_chat_once_streams_answer_and_footer(embedded_pool):
    proc = run_cli("chat", "What is the capital of France? Answer in one word.", "--temperature", "0",
                   "--max-tokens", "24")
    assert proc.returncode == 0, proc.stderr
    assert "paris" in proc.stdout.lower()
    assert "smollm2-135m" in proc.stderr and "tokens" in proc.stderr and "tok/s" in proc.stderr


def test_chat_json(embedded_pool):
    proc = run_cli("chat", "--json", "Say hello.", "--max-tokens", "12")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["deployment"] == "smollm2-135m" and out["answer"].strip()
    assert out["usage"]["completion_tokens"] >= 1 and out["latency_s"] > 0
    assert set(out) >= {"question", "answer", "deployment", "usage", "cost_usd", "latency_s", "ttft_s"}


def test_interactive_session_keeps_history_and_exits(embedded_pool):
    proc = run_cli("chat", "--max-tokens", "12", "--temperature", "0",
                   input="My name is Ada.\nWhat is my name?\n/exit\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("smollm2-135m ·") == 2, "one footer per answer"
    # Ctrl-D (end of input) ends the session cleanly too
    proc = run_cli("chat", "--max-tokens", "8", input="Hi\n")
    assert proc.returncode == 0 and proc.stderr.count("smollm2-135m ·") == 1
    no_traceback(proc)


def test_no_keep_stops_what_it_started(tmp_path):
    state = tmp_path / "state"
    proc = run_cli("chat", "--no-keep", "Hi", "--max-tokens", "4", env={"JUNTO_STATE_DIR": str(state)})
    assert proc.returncode == 0, proc.stderr
    assert (state / "pools/embedded/logs/smollm2-135m.log").exists(), "a server was started"
    assert not list((state / "pools/embedded").glob("*.json"))
    assert servers_with_state_dir(state) == []


def test_pool_up_status_down(tmp_path):
    env = {"JUNTO_STATE_DIR": str(tmp_path / "state")}
    up = run_cli("pool", "up", env=env)
    assert up.returncode == 0 and "started" in up.stdout, up.stderr
    st = run_cli("pool", "status", "--json", env=env)
    (row,) = json.loads(st.stdout)
    assert row["state"] == "running" and process_alive(row["pid"])
    down = run_cli("pool", "down", env=env)
    assert down.returncode == 0 and "stopped 1" in down.stdout
    assert not process_alive(row["pid"])
    assert servers_with_state_dir(tmp_path / "state") == []
    assert json.loads(run_cli("pool", "status", "--json", env=env).stdout)[0]["state"] == "stopped"


@pytest.mark.parametrize("body, code, fragment", [
    ("name: x\ndeployments:\n  - name: a\n   backend: [\n", 2, "malformed YAML"),
    ("name: x\ndeployments:\n  - {name: a, backend: ollama, model: m}\n", 2, "deployments[0].backend"),
    ("name: x\ndeployments:\n  - {name: a, backend: llamacpp, model: /nonexistent/m.gguf}\n", 2, "model file not found"),
])
def test_bad_pool_files(tmp_path, body, code, fragment):
    pool = tmp_path / "bad.yaml"
    pool.write_text(body)
    env = {"JUNTO_STATE_DIR": str(tmp_path / "state")}
    proc = run_cli("chat", "--pool", str(pool), "hi", env=env)
    assert proc.returncode == code, proc.stderr
    assert fragment in proc.stderr and "hint:" in proc.stderr
    no_traceback(proc)
    assert not list((tmp_path / "state").glob("pools/*/*.json"))
    assert servers_with_state_dir(tmp_path / "state") == []


def test_unreachable_endpoint(tmp_path):
    pool = tmp_path / "remote.yaml"
    pool.write_text(f"name: r\ndeployments:\n  - {{name: a, backend: openai, model: m, url: 'http://127.0.0.1:{free_port()}/v1',"
                    f" connect_retries: 0}}\n")
    proc = run_cli("chat", "--pool", str(pool), "hi")
    assert proc.returncode == 1 and "cannot connect" in proc.stderr and "hint:" in proc.stderr
    no_traceback(proc)


def test_backend_killed_mid_stream(tmp_path):
    with stub_server(mode="die") as (url, stub):
        pool = tmp_path / "dying.yaml"
        pool.write_text(f"name: d\ndeployments:\n  - {{name: a, backend: openai, model: m, url: '{url}'}}\n")
        proc = run_cli("chat", "--pool", str(pool), "hi")
    assert proc.returncode == 1, proc.stderr
    assert "broke off" in proc.stderr or "without finishing" in proc.stderr
    no_traceback(proc)


def test_usage_errors_exit_2():
    assert run_cli("chat", "--temperature", "9", "hi").returncode == 2
    assert run_cli("no-such-command").returncode == 2
    proc = run_cli("chat", "--deployment", "nope", "hi")
    assert proc.returncode == 2 and "no deployment 'nope'" in proc.stderr
    assert run_cli("--version").stdout.startswith("junto ")
