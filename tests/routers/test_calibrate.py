"""`junto route calibrate` end to end on the embedded llama.cpp pool, including resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import run_cli

pytestmark = pytest.mark.llamacpp

DATASET = Path(__file__).resolve().parents[2] / "configs" / "datasets" / "calibrate-mini.jsonl"


@pytest.fixture
def two_deployment_pool(embedded_pool, tmp_path) -> Path:
    """Two named deployments on the one running server: calibration sees two 'models'."""
    _pool, endpoints = embedded_pool
    url = next(iter(endpoints.values()))
    data = {"name": "calib-test", "deployments": [
        {"name": "tiny-a", "backend": "openai", "model": "smollm2", "url": url, "max_concurrency": 1},
        {"name": "tiny-b", "backend": "openai", "model": "smollm2", "url": url, "max_concurrency": 1},
    ]}
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _progress_lines(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def test_calibrate_writes_records_and_resumes_after_a_kill(two_deployment_pool, tmp_path):
    dataset = tmp_path / "mini.jsonl"
    dataset.write_text("\n".join(DATASET.read_text().splitlines()[:4]) + "\n")
    out = tmp_path / "records.jsonl"
    prog = tmp_path / "records.jsonl.progress.jsonl"
    args = [sys.executable, "-m", "junto.cli", "route", "calibrate", "--pool", str(two_deployment_pool),
            "--dataset", str(dataset), "--out", str(out), "--max-tokens", "24"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "NO_COLOR": "1"})
    try:
        deadline = time.monotonic() + 120
        while len(_progress_lines(prog)) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.fail(f"calibrate exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    done_before = _progress_lines(prog)
    assert 3 <= len(done_before) < 8, "the kill should land mid-run"
    assert not out.exists(), "records are written only once every answer is graded"

    r = run_cli("route", "calibrate", "--pool", str(two_deployment_pool), "--dataset", str(dataset),
                "--out", str(out), "--max-tokens", "24")
    assert r.returncode == 0, r.stderr
    lines = _progress_lines(prog)
    pairs = [(d["item"], d["deployment"]) for d in lines]
    assert len(pairs) == len(set(pairs)) == 8, "every (item, deployment) graded exactly once across both runs"
    assert lines[:len(done_before)] == done_before, "finished answers were not redone"
    assert f"{len(done_before)} reused" in r.stdout

    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4
    assert all(set(rec["scores"]) == {"tiny-a", "tiny-b"} for rec in records)
    assert all(0.0 <= s <= 1.0 for rec in records for s in rec["scores"].values())
    assert records[0]["question"] == "What is 12 + 30?"

    # the records feed `junto route fit` and `eval` directly
    router = tmp_path / "router"
    fit = run_cli("route", "fit", "--records", str(out), "--method", "avengers", "--out", str(router),
                  "--embedder", "static", "--clusters", "2", "--top-k", "2")
    assert fit.returncode == 0, fit.stderr
    ev = run_cli("route", "eval", "--router", str(router), "--records", str(out), "--json")
    assert ev.returncode == 0, ev.stderr
    res = json.loads(ev.stdout.strip().splitlines()[-1])
    assert res["n"] == 4


def test_calibrate_bad_dataset_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "a", "metric": "bleu"}\n')
    r = run_cli("route", "calibrate", "--dataset", str(bad), "--out", str(tmp_path / "o.jsonl"))
    assert r.returncode == 2
    assert "metric 'bleu'" in r.stderr and "Traceback" not in r.stderr


def test_a_line_separator_inside_a_question_is_not_a_line_break(tmp_path):
    """U+2028 occurs inside real questions (the shared data has one): JSONL lines end at \\n only."""
    from junto.routers.calibrate import load_dataset

    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"id": "1", "question": "first\u2028second", "answer": "x", "metric": "exact"},
                            ensure_ascii=False) + "\n")
    (item,) = load_dataset(f)
    assert item.question == "first\u2028second"
