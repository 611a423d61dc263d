"""A self-consistency run on the real embedded llama.cpp server, killed with SIGKILL mid-way, resumes from its
SQLite checkpoint with the same trace id and draws only the samples that had not finished."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from junto.config import JuntoConfig
from junto.errors import ConfigError

RUNNER = Path(__file__).with_name("run_strategy.py")
SAMPLES = 8
PARAMS = {"samples": SAMPLES, "batch": 2, "early_stop": "none", "max_tokens": 40, "temperature": 0.8}
QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have? Explain briefly."


def snapshot(db: Path, thread_id: str):
    """The run's saved state, read as junto reads it (strict serde widened to the sc graph's state types)."""
    from junto.reasoning.registry import state_types
    from junto.reasoning.sc.graph import graph
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(db, check_same_thread=False)
    try:
        saver = SqliteSaver(conn, serde=JsonPlusSerializer(allowed_msgpack_modules=None))
        g = graph.copy({"checkpointer": saver.with_allowlist(state_types(graph))})
        return g.get_state({"configurable": {"thread_id": thread_id}})
    finally:
        conn.close()


def finished_indices(snap) -> set[int]:
    """Samples in the saved state, plus those of tasks that finished in the step that was running."""
    done = {s["index"] for s in snap.values.get("samples", [])}
    for task in snap.tasks:
        if task.result:
            done |= {s["index"] for s in task.result.get("samples", [])}
    return done


def threads(db: Path, trace_id: str) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT DISTINCT thread_id FROM checkpoints WHERE thread_id LIKE ?",
                                           (f"{trace_id}/%",))]
    except sqlite3.OperationalError:  # the table is not created yet
        return []
    finally:
        conn.close()


def run(config: Path, trace_id: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RUNNER), str(config), trace_id, QUESTION, "sc", json.dumps(PARAMS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_a_killed_sc_run_resumes_without_redoing_finished_samples(embedded_pool, tmp_path):
    db = tmp_path / "runs.db"
    config = tmp_path / "junto.yaml"
    config.write_text(yaml.safe_dump({"pool": "embedded", "checkpoints": "sqlite:///runs.db"}))
    trace = "trace-resume-1"
    first = run(config, trace)
    try:
        deadline = time.monotonic() + 120
        snap, tid = None, None
        while time.monotonic() < deadline:  # wait for the first round (2 samples) to be saved, then kill
            assert first.poll() is None, f"the run ended before it was killed: {first.stderr.read()[-2000:]}"
            found = threads(db, trace)
            if found:
                tid = found[0]
                snap = snapshot(db, tid)
                if len(finished_indices(snap)) >= 2:
                    break
            time.sleep(0.02)
        assert tid is not None and snap is not None, "no checkpoint was written"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    snap = snapshot(db, tid)  # what survived the kill
    done = finished_indices(snap)
    assert 2 <= len(done) < SAMPLES, done
    assert snap.tasks and "result" not in snap.values, "the saved run is unfinished"

    second = run(config, trace)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert events[0]["type"] == "resumed" and events[0]["thread_id"] == tid
    drawn = [i for ev in events if ev["type"] == "model_call" for i in range(ev["first_index"], ev["first_index"] + ev["n"])]
    assert not set(drawn) & done, f"finished samples drawn again: {sorted(set(drawn) & done)}"
    assert sorted(drawn) == sorted(set(range(SAMPLES)) - done)  # exactly the missing ones, once each
    result = events[-1]
    assert result["type"] == "result" and result["samples"] == SAMPLES
    assert threads(db, trace) == [], "the finished run's checkpoints were not deleted"


def test_another_question_under_the_same_trace_id_starts_afresh():
    from junto.stores.checkpoints import Checkpoints

    a = Checkpoints.thread_id("t", "sc", [{"role": "user", "content": "1+1?"}], {"samples": 3})
    assert a == Checkpoints.thread_id("t", "sc", [{"role": "user", "content": "1+1?"}], {"samples": 3})
    assert a.startswith("t/sc/")
    assert a != Checkpoints.thread_id("t", "sc", [{"role": "user", "content": "2+2?"}], {"samples": 3})
    assert a != Checkpoints.thread_id("t", "sc", [{"role": "user", "content": "1+1?"}], {"samples": 4})


@pytest.mark.parametrize(("value", "message"), [
    ("runs.db", "checkpoints.url: must be sqlite:///<file>"),
    ("sqlite:///", "names no file"),
    ("mysql://db/x", "postgresql://"),
])
def test_bad_checkpoint_urls_are_refused_naming_the_field(tmp_path, value, message):
    from junto.config import load_config

    path = tmp_path / "junto.yaml"
    path.write_text(yaml.safe_dump({"pool": "embedded", "checkpoints": value}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "checkpoints.url" in err.value.message and message in err.value.message


def test_unknown_checkpointed_strategy_is_refused():
    from junto.facade import Junto
    from junto.pool.config import load_pool

    cfg = JuntoConfig(pool="embedded", checkpoints={"url": "sqlite:///x.db", "strategies": ["sc", "nope"]})
    with pytest.raises(ConfigError) as err:
        Junto(load_pool("embedded"), config=cfg, auto_start=False)
    assert "checkpoints.strategies" in err.value.message and "'nope'" in err.value.message
