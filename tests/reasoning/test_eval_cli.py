"""`junto eval` through a real subprocess: live runs through the facade, replay, bad input."""

from __future__ import annotations

import json
import random
import time

import pytest
import yaml
from helpers import run_cli

from junto.reasoning.replay import replay_sc


@pytest.mark.llamacpp
def test_eval_live_json(embedded_pool, tmp_path):
    # the subprocess shares the session's state dir, so it finds the fixture's server running
    record = tmp_path / "rec.jsonl"
    r = run_cli("eval", "--strategy", "sc", "--dataset", "arith-easy", "--limit", "2", "--samples", "2",
                "--max-tokens", "16", "--param", "early_stop=none", "--record", str(record), "--json", "--no-keep")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    s = out["summary"]
    assert s["questions"] == 2 and s["samples"] == 4 and s["errors"] == 0
    assert s["accuracy"] == sum(row["correct"] for row in out["rows"]) / 2
    assert s["completion_tokens"] > 0 and s["latency_mean_s"] > 0
    for row in out["rows"]:
        assert len(row["sample_answers"]) == 2 and row["reference"]
        assert row["routing"] == [embedded_pool[0].default_deployment.name]  # asked through the facade's router
        assert "_samples" not in row
    # the record holds the raw completions; replaying them re-reads the same votes without any model
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert len(line["completions"]) == len(line["finish_reasons"]) == len(line["answers"]) == 2
        assert all(isinstance(t, str) and t for t in line["completions"])
    rr = run_cli("eval", "--strategy", "sc", "--replay", str(record), "--param", "early_stop=none", "--json")
    assert rr.returncode == 0, rr.stderr
    replayed = json.loads(rr.stdout)
    assert [x["answer"] for x in replayed["rows"]] == [x["answer"] for x in out["rows"]]
    assert replayed["summary"]["accuracy"] == s["accuracy"]


def test_eval_live_runs_through_the_facade(tmp_path, state_root):
    """A junto config's strategy defaults and its pool's routing apply to eval, as to chat and the gateway.

    Two real llama.cpp servers (the built-in embedded-pair pool); stopped at the end (--no-keep).
    """
    data = tmp_path / "qs.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1), "kind": "number"}) + "\n"
                            for i in range(2)))
    cfg = tmp_path / "junto.yaml"
    cfg.write_text(yaml.safe_dump({"pool": "embedded-pair", "strategies": {"sc": {"samples": 3, "early_stop": "none"}}}))
    record = tmp_path / "rec.jsonl"
    try:
        r = run_cli("eval", "--strategy", "sc", "--pool", str(cfg), "--dataset", str(data), "--record", str(record),
                    "--max-tokens", "24", "--json")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        # samples=3 comes from the config's strategy defaults: only the facade applies them
        assert out["summary"]["samples"] == 6 and out["summary"]["errors"] == 0
        for row in out["rows"]:
            assert row["routing"] == ["smollm2-a", "smollm2-b"] and row["deployments"] == ["smollm2-a"]
            assert len(row["sample_answers"]) == 3
        lines = [json.loads(x) for x in record.read_text().splitlines()]
        assert [len(x["completions"]) for x in lines] == [3, 3]
        assert all(isinstance(t, str) and t for x in lines for t in x["completions"])
        assert all(f in ("stop", "length") for x in lines for f in x["finish_reasons"])
        # direct takes the facade's hot path; a strategy parameter it does not take is refused before any call
        r = run_cli("eval", "--strategy", "direct", "--pool", str(cfg), "--dataset", str(data), "--max-tokens", "24",
                    "--json")
        assert r.returncode == 0, r.stderr
        assert [row["samples"] for row in json.loads(r.stdout)["rows"]] == [1, 1]
        r = run_cli("eval", "--strategy", "direct", "--pool", str(cfg), "--dataset", str(data), "--samples", "2")
        assert r.returncode == 2 and "samples" in r.stderr and "Traceback" not in r.stderr
    finally:
        run_cli("pool", "down", "--pool", "embedded-pair")


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


def test_eval_replay_reads_raw_completions(tmp_path):
    f = tmp_path / "raw.jsonl"
    rows = [
        {"question": "q1", "reference": "-1/2", "model": "a", "kind": "auto",
         "completions": [r"The answer is $-\frac{1}{2}$.", "I don't know.", "I don't know.", "I don't know.",
                         r"So we get \boxed{-0.5}"]},
        {"question": "q2", "reference": "B", "model": "a", "kind": "auto",
         "completions": ["Since 3 > 1. Therefore the answer is (B).", r"\boxed{B}", "The answer is (C).",
                         "Let me look at each option. 3 is bigger than 1, and 1"],
         "finish_reasons": ["stop", "stop", "stop", "length"]},
        {"question": "q3", "reference": "7", "model": "a", "kind": "number",
         "completions": ["The answer is 7.", "Counting: 1, 2, 3, 4, 5, 6, 9", "Counting: 1, 2, 3, 4, 5, 9",
                         "Counting: 1, 2, 3, 4, 9"],
         "finish_reasons": ["stop", "length", "length", "length"]},
    ]
    f.write_text("".join(json.dumps(x) + "\n" for x in rows))
    r = run_cli("eval", "--strategy", "sc", "--replay", str(f), "--param", "early_stop=none", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # refusals never vote; (B) and \boxed{B} vote together; truncated samples do not vote
    assert [x["answer"] for x in out["rows"]] == ["-1/2", "B", "7"]
    assert out["rows"][1]["votes"] == {"B": 2.0, "C": 1.0} and out["rows"][2]["votes"] == {"7": 1.0}
    assert out["summary"]["accuracy"] == 1.0
    # unless told otherwise: then the cut-off last numbers outvote the answer
    r = run_cli("eval", "--strategy", "sc", "--replay", str(f), "--param", "early_stop=none", "--allow-truncated",
                "--json")
    out = json.loads(r.stdout)
    assert [x["answer"] for x in out["rows"]] == ["-1/2", "B", "9"]
    r = run_cli("eval", "--strategy", "sc", "--replay", str(f), "--param", "early_stop=none",
                "--param", "allow_truncated=true", "--json")
    assert [x["answer"] for x in json.loads(r.stdout)["rows"]] == ["-1/2", "B", "9"]
    # a finish_reasons list that does not match is a clear error
    f.write_text(json.dumps({"question": "q", "reference": "1", "completions": ["1", "2"], "finish_reasons": ["stop"]}))
    r = run_cli("eval", "--strategy", "sc", "--replay", str(f))
    assert r.returncode == 2 and "finish_reasons" in r.stderr and "Traceback" not in r.stderr


# SmolLM2-like replies to "What is a + b?": mixed formats, 150–400 characters, some wrong, some refusals
FILLER = ["This is a simple addition problem that we can solve in our heads.",
          "Addition combines two numbers into one total, which we call the sum.",
          "We can count on from the first number until we have added the second one.",
          "The order of the numbers does not matter when adding, so either way works.",
          "Let me make sure I read the question correctly before answering it.",
          "It helps to break the problem into small steps and check each of them."]
NUMBER_REPLIES = [
    "{f} {f} The answer is {x}.",
    "Sure! To find the sum, we add {a} and {b} together. {f} {a} + {b} = {x}. So, the answer is {x}.",
    "Let's solve this step by step. {f}\n\nStep 1: Start with {a}.\nStep 2: Add {b} to it.\n\n{f} {f}\n\n"
    "Therefore, the final answer is $\\boxed{{{x}}}$.",
    "{f} {f}\n\nAnswer: {x}",
    "**{x}**\n\nThis is because when you add {a} and {b}, you get {x}. {f} {f}",
    "{f} The sum of {a} and {b} is {x}. I hope this helps! Let me know if you have any other questions.",
    "{f} To calculate {a} + {b}, we can count up from {a} by {b}: the result is {x}.",
    "We have {a} + {b}. {f}\n\n$$ {a} + {b} = {x} $$\n\n{f} The answer is: {x}",
]
CHOICE_REPLIES = [
    "{f} Looking at the options, {a} plus {b} is the largest. Therefore the answer is ({x}).",
    "{f} {f} The correct option is \\boxed{{{x}}}.",
    "{x}. This option matches the question best. {f} {f}",
    "{f} Comparing each option carefully, since {a} > {b}, the answer is {x} because it fits.",
]
NOISE = ["I'm sorry, but I can't answer that question. {f} {f}", "I don't know. {f} {f} {f}",
         "Hmm, that's a good question! {f} {f} Numbers help us count things and measure the world around us."]
TRUNCATED = ["Let's think step by step. {f} {f} First, we need to understand the question, so we get {x}",
             "{f} {f} We add {a} and {b}, and adding the ones, then the tens, we have {x}"]
TRUNCATED_CHOICE = ["{f} {f} {f} Looking at option ({x}) first, ", "Let's think step by step. {f} {f} Option {x} says "]


def smollm_like_replay(n_questions: int, k: int, seed: int = 0) -> tuple[list[dict], list[str], list[str]]:
    """Replay lines with raw completions, the answer each question's vote must give by default, and with
    truncated samples allowed to vote. Per question: 4 right, 3 wrong-1, 4 refusals or prose, 5 cut off by
    max_tokens with wrong-2 as their last answer; every 10th question has its 4 and 3 swapped."""
    rng = random.Random(seed)
    lines, expected, expected_truncated = [], [], []
    for i in range(n_questions):
        a, b = rng.randint(2, 999), rng.randint(2, 999)
        mc = i % 5 == 4
        if mc:
            right, wrong1, wrong2 = rng.sample("ABCDE", 3)
            replies, cut, kind = CHOICE_REPLIES, TRUNCATED_CHOICE, "auto"
        else:
            right, wrong1, wrong2 = str(a + b), str(a + b + rng.randint(1, 9)), str(a + b - rng.randint(1, 9))
            replies, cut, kind = NUMBER_REPLIES, TRUNCATED, rng.choice(["auto", "number"])
        n_right, n_wrong = (3, 4) if i % 10 == 9 else (4, 3)
        plan = [(right, replies, "stop")] * n_right + [(wrong1, replies, "stop")] * n_wrong
        plan += [(None, NOISE, "stop")] * 4 + [(wrong2, cut, "length")] * (k - n_right - n_wrong - 4)
        rng.shuffle(plan)
        texts, finish = [], []
        for x, pool, fr in plan:
            template = rng.choice(pool)
            parts = template.format(a=a, b=b, x=x, f="\0").split("\0")  # each {f}: a filler sentence
            texts.append(parts[0] + "".join(rng.choice(FILLER) + p for p in parts[1:]))
            finish.append(fr)
        lines.append({"question": f"q{i}: What is {a} + {b}?", "reference": right, "model": "smollm2-135m",
                      "kind": kind, "completions": texts, "finish_reasons": finish})
        expected.append(right if n_right > n_wrong else wrong1)
        expected_truncated.append(wrong2)
    return lines, expected, expected_truncated


def test_replaying_300_questions_of_16_raw_samples_takes_seconds(tmp_path):
    lines, expected, expected_truncated = smollm_like_replay(300, 16)
    lengths = [len(t) for x in lines for t in x["completions"]]
    assert 150 <= sorted(lengths)[len(lengths) // 2] <= 400 and len(lengths) == 4800
    f = tmp_path / "smollm.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in lines))
    t0 = time.perf_counter()
    r = run_cli("eval", "--strategy", "sc", "--replay", str(f), "--samples", "16", "--json")
    took = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    print(f"replayed 300 questions x 16 raw samples: {out['summary']['wall_s']:.2f} s in eval, {took:.2f} s "
          f"with process start-up")
    assert took < 60, f"replay took {took:.1f} s"
    assert [x["answer"] for x in out["rows"]] == expected
    assert out["summary"]["accuracy"] == 0.9
    r = run_cli("eval", "--strategy", "sc", "--replay", str(f), "--samples", "16", "--allow-truncated",
                "--param", "early_stop=none", "--json")
    assert [x["answer"] for x in json.loads(r.stdout)["rows"]] == expected_truncated


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
