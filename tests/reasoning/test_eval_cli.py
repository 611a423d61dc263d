"""`junto eval` through a real subprocess: a small live run on the embedded pool, replay, bad input."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

from junto.reasoning.replay import replay_sc


@pytest.mark.llamacpp
def test_eval_live_json(embedded_pool, tmp_path):
    # the subprocess shares the session's state dir, so it finds the fixture's server running
    record = tmp_path / "rec.jsonl"
    r = run_cli("eval", "--strategy", "sc", "--dataset", "arith-easy", "--limit", "2", "--samples", "2",
                "--max-tokens", "8", "--param", "early_stop=none", "--record", str(record), "--json", "--no-keep")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    s = out["summary"]
    assert s["questions"] == 2 and s["samples"] == 4 and s["errors"] == 0
    assert s["accuracy"] == sum(row["correct"] for row in out["rows"]) / 2
    assert s["completion_tokens"] > 0 and s["latency_mean_s"] > 0
    for row in out["rows"]:
        assert len(row["sample_answers"]) == 2 and row["reference"]
    # the recorded samples replay to the same votes without any model
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    assert len(lines) == 2 and all(len(x["answers"]) == 2 for x in lines)
    rr = run_cli("eval", "--strategy", "sc", "--replay", str(record), "--param", "early_stop=none", "--json")
    assert rr.returncode == 0, rr.stderr
    replayed = json.loads(rr.stdout)
    assert [x["answer"] for x in replayed["rows"]] == [x["answer"] for x in out["rows"]]
    assert replayed["summary"]["accuracy"] == s["accuracy"]


def test_eval_replay_scores_voting_without_a_model(tmp_path):
    f = tmp_path / "replay.jsonl"
    rows = [
        {"question": "q1", "reference": "7", "model": "a", "kind": "number", "answers": ["7", "7", "1", "7", "2", "7"]},
        {"question": "q2", "reference": "1/2", "model": "a", "kind": "math", "answers": [r"\frac12", "0.5", "3", "1/2"]},
        {"question": "q3", "reference": "9", "model": "a", "kind": "number", "answers": ["8", None, "8", "9"]},
        {"question": "q3", "reference": "9", "model": "b", "kind": "number", "answers": ["9", "9", "9", "9"]},
    ]
    f.write_text("".join(json.dumps(x) + "\n" for x in rows))
    r = run_cli("eval", "--strategy", "sc", "--replay", str(f), "--samples", "4", "--param", "early_stop=none", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [x["answer"] for x in out["rows"]] == ["7", "1/2", "8"]
    assert out["summary"]["accuracy"] == pytest.approx(2 / 3, abs=1e-3)
    assert out["summary"]["samples"] == 12 and out["summary"]["samples_saved"] == 0
    # early stopping: the same answers from fewer samples (q1 is decided after 4 of 6)
    r = run_cli("eval", "--strategy", "sc", "--replay", str(f), "--samples", "6", "--json")
    out = json.loads(r.stdout)
    expected = replay_sc(["7", "7", "1", "7", "2", "7"], 6, "unbeatable")
    assert out["rows"][0]["samples"] == expected.samples < 6
    # modelswitch: model a is split on q3, so the pooled vote over a and b wins
    r = run_cli("eval", "--strategy", "modelswitch", "--replay", str(f), "--samples", "4", "--json")
    out = json.loads(r.stdout)
    assert out["rows"][2]["answer"] == "9" and out["rows"][2]["reason"] == "pooled vote"
    assert out["summary"]["accuracy"] == 1.0
    # a human-readable table without --json
    r = run_cli("eval", "--strategy", "sc", "--replay", str(f))
    assert r.returncode == 0 and "accuracy" in r.stdout and "replay" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["--strategy", "sc", "--dataset", "arith-easy", "--param", "samples=0"], "samples"),
    (["--strategy", "sc", "--dataset", "arith-easy", "--param", "nonsense=1"], "nonsense: unknown parameter"),
    (["--strategy", "beam", "--dataset", "arith-easy"], "unknown strategy 'beam'"),
    (["--strategy", "sc", "--dataset", "no-such-set"], "dataset not found"),
    (["--strategy", "sc"], "no dataset"),
    (["--strategy", "sc", "--dataset", "arith-easy", "--param", "x"], "not key=value"),
])
def test_eval_bad_input_is_a_clear_error(args, needle):
    r = run_cli("eval", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and "hint:" in r.stderr and "Traceback" not in r.stderr


def test_eval_bad_dataset_line_names_file_and_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "no answer"}\n')
    r = run_cli("eval", "--strategy", "sc", "--dataset", str(f))
    assert r.returncode == 2 and f"{f}:2" in r.stderr and "answer" in r.stderr
    f.write_text("not json\n")
    r = run_cli("eval", "--strategy", "sc", "--replay", str(f))
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr
