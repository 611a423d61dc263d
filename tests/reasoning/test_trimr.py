"""TrimR's pure logic (segmentation, answer checks, repetition, decisions), the offline replay over the
recorded 1.5B traces, the ``junto eval-trimr`` CLI, and the verifier's reading of top logprobs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from junto.errors import ConfigError
from junto.reasoning.trimr.logic import (CLOSING, MARKERS, Monitor, RepetitionDetector, Segmenter, check_thought,
                                         split_thoughts)
from junto.reasoning.trimr.offline import load_traces, replay_trace, summarize
from junto.reasoning.trimr.verifier import messages_for, yes_no

DATA = Path(__file__).resolve().parents[1] / "data"
TRACES = DATA / "trimr-qwen1.5b-gsm8k.jsonl"
JUNTO = str(Path(sys.executable).with_name("junto"))

# -- segmentation -------------------------------------------------------------------------------


def test_markers_and_blank_lines_cut_thoughts():
    text = ("Let me compute 48/2 = 24. So May is 24.\n\nTotal is 48+24 = 72. Wait, let me verify: 48 + 24 = 72.\n"
            "But Butter is no marker here.\nHmm, the answer is 72.\nAlternatively, 1.5*48 = 72.")
    assert split_thoughts(text) == [
        "Let me compute 48/2 = 24. So May is 24.", "Total is 48+24 = 72.", "Wait, let me verify: 48 + 24 = 72.",
        "But Butter is no marker here.", "Hmm, the answer is 72.", "Alternatively, 1.5*48 = 72."]


@pytest.mark.parametrize("text", [
    "Butter costs 3. However, we wait.",         # marker words inside words, or lower case
    "x = 3.But it is not after a space",          # no space after the full stop
    "The Waiter said 4. Buttons are 2.",          # prefixes of longer words
    "a\nb\nc",                                     # single newlines are no boundary
])
def test_no_false_boundaries(text):
    assert split_thoughts(text) == [text.strip()]


def test_marker_at_line_start_and_indented_blank_line():
    assert split_thoughts("2+2=4\n  Wait, 4.\n \t \nso 4") == ["2+2=4", "Wait, 4.", "so 4"]


def test_every_marker_opens_a_thought():
    for m in MARKERS:
        assert split_thoughts(f"One is 1. {m} two is 2.") == ["One is 1.", f"{m} two is 2."]


def test_empty_and_whitespace():
    assert split_thoughts("") == []
    assert split_thoughts("\n\n\n   \n") == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(list("ab .!?\n\t") + ["Wait", "But", "Hmm", "Alternatively", "Butter", "7"]),
                max_size=120).map("".join), st.integers(1, 40))
def test_streaming_equals_whole(text, step):
    """Fed in any pieces, the segmenter finds the same thoughts as on the whole text."""
    seg = Segmenter()
    out = []
    for i in range(0, len(text), step):
        out += seg.feed(text[i:i + step])
    out += seg.flush()
    assert out == split_thoughts(text)
    # no text is lost: the thoughts are the text's non-space content, in order
    assert "".join("".join(out).split()) == "".join(text.split())


LIMIT_S = 0.25
ADVERSARIAL = [
    "Wait " * 4000, "\n" * 20_000, " " * 20_000, ". " * 10_000, "\n \n" * 6000, "But\n" * 5000,
    ("x" * 19_990) + "\n\nWait", "1 " * 10_000, "\\boxed{" * 2000 + "1" + "}" * 2000, "answer is " * 2000,
]


def _best_of_two(fn) -> float:
    """Seconds ``fn()`` takes, the better of two runs (a scheduler hiccup on a shared machine is not its cost)."""
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.parametrize("text", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_linear_time_on_adversarial_text(text):
    def work():
        seg = Segmenter()
        for i in range(0, len(text), 7):  # streamed in small pieces: the worst case for rescanning
            for th in seg.feed(text[i:i + 7]):
                check_thought(th)
        seg.flush()
        RepetitionDetector().feed_text(text)

    assert _best_of_two(work) < LIMIT_S * 4


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=40, alphabet=st.sampled_from(list("Wait But\n.?! 0123456789=+x{}\\"))))
def test_linear_time_hypothesis(unit):
    """A random unit repeated to 20,000 characters: segmentation, checks and the loop detector stay fast."""
    text = (unit * (20_000 // len(unit) + 1))[:20_000]

    def work():
        for th in split_thoughts(text):
            check_thought(th)
        RepetitionDetector().feed_text(text)

    assert _best_of_two(work) < LIMIT_S * 4


# -- answer checks ------------------------------------------------------------------------------

@pytest.mark.parametrize("thought, verdict, key", [
    ("So the answer is 72.", "answer", "72"),
    ("Therefore the total is \\boxed{72} clips.", "answer", "72"),
    ("Answer: 6,230", "answer", "6230"),
    ("The answer is $\\frac{1}{2}$.", "answer", "1/2"),
    ("Let me think about what the question asks.", "none", None),
    ("Wait, I should re-read the question.", "none", None),
    ("48 / 2 = 24 clips in May.", "unsure", "24"),
    ("Remaining amount = 124,600 - 62,300 = 62,300", "unsure", "62300"),
])
def test_check_thought(thought, verdict, key):
    c = check_thought(thought)
    assert (c.verdict, c.key) == (verdict, key)


# -- repetition ---------------------------------------------------------------------------------

def test_repetition_caught_on_a_loop_not_on_normal_text():
    loop = "I need to add 3 and 4 to get 7 and then check it again. " * 10
    d = RepetitionDetector(window=12, repeats=3)
    assert d.feed_text(loop)
    assert d.hit is not None
    normal = " ".join(f"step {i} gives value {i * 7} so far" for i in range(200))
    assert not RepetitionDetector(window=12, repeats=3).feed_text(normal)


def test_repetition_over_token_ids_and_streamed_words():
    d = RepetitionDetector(window=4, repeats=3)
    assert not d.feed_ids([1, 2, 3, 4, 5, 6, 7, 8])
    assert not d.feed_ids([1, 2, 3, 4])         # second occurrence
    assert d.feed_ids([9, 1, 2, 3, 4])          # third: caught
    w = RepetitionDetector(window=3, repeats=2)
    # a word split across pieces is one word
    assert not w.feed_text("alpha be")
    assert not w.feed_text("ta gamma ")
    assert w.feed_text("x alpha beta gamma ")


def test_repetition_rejects_bad_settings():
    with pytest.raises(ValueError):
        RepetitionDetector(window=0)
    with pytest.raises(ValueError):
        RepetitionDetector(repeats=1)


# -- decisions ----------------------------------------------------------------------------------

def test_overthinking_after_two_equivalent_answers():
    m = Monitor(budget=1000)
    assert m.observe("answer", "72", 50) == "continue"
    assert m.observe("none", None, 80) == "continue"          # a thought without an answer breaks the streak
    assert m.observe("answer", "72", 120) == "continue"
    assert m.observe("answer", "72.0", 160) == "overthinking"  # equivalent, not equal text
    assert m.answer == "72" or m.answer == "72.0"
    assert m.converged_at == 3
    assert m.observe("answer", "5", 170) == "overthinking"     # decided: stays decided


def test_different_answers_reset_the_streak():
    m = Monitor(budget=1000, consecutive=3)
    for key in ["1", "1", "2", "2"]:
        assert m.observe("answer", key, 10) == "continue"
    assert m.observe("answer", "2", 20) == "overthinking"
    assert [o.streak for o in m.observations] == [1, 2, 1, 2, 3]


def test_unsure_or_none_verdicts_never_count():
    m = Monitor(budget=1000)
    assert m.observe("unsure", "7", 10) == "continue"
    assert m.observe("unsure", "7", 20) == "continue"
    assert m.observe("none", "7", 30) == "continue"


def test_underthinking_by_budget_share_and_by_thought_count():
    m = Monitor(budget=100, under_fraction=0.5)
    assert m.observe("answer", "1", 49) == "continue"
    assert m.observe("answer", "2", 50) == "underthinking"
    m = Monitor(budget=10_000, max_thoughts=20)
    for i in range(19):
        assert m.observe("answer", str(i), i) == "continue"
    assert m.observe("answer", "99", 19) == "underthinking"


def test_convergence_wins_over_underthinking_on_the_same_thought():
    m = Monitor(budget=100)
    m.observe("answer", "3", 10)
    assert m.observe("answer", "3", 90) == "overthinking"


def test_trip_and_closing_texts():
    m = Monitor(budget=100)
    assert m.trip("repetition") == "repetition"
    assert m.trip("underthinking") == "repetition"
    assert set(CLOSING) == {"overthinking", "underthinking", "repetition"}


# -- verifier reading ---------------------------------------------------------------------------

def test_yes_no_sums_top_logprobs():
    import math
    top = [{"token": "Yes", "logprob": math.log(0.5)}, {"token": " yes", "logprob": math.log(0.1)},
           {"token": "No", "logprob": math.log(0.3)}, {"token": "Maybe", "logprob": math.log(0.1)}]
    p_yes, p_no = yes_no(top)
    assert p_yes == pytest.approx(0.6) and p_no == pytest.approx(0.3)
    assert yes_no(None) == (0.0, 0.0)
    assert yes_no([{"token": "No.", "logprob": 0.0}, {"token": "x"}]) == (0.0, 1.0)


def test_verifier_prompt_keeps_the_tail_of_a_long_thought():
    msgs = messages_for("Q?", "x" * 5000 + "the answer is 7")
    assert msgs[0]["content"].count("x") < 2000 and "the answer is 7" in msgs[0]["content"]


# -- offline replay over real traces -----------------------------------------------------------

def _run(coro):
    import asyncio
    return asyncio.run(coro)


def test_trace_file_is_real_and_well_formed():
    rows = load_traces(TRACES)
    assert len(rows) >= 5
    for r in rows:
        assert r["trace"] and r["question"] and r["answer"]
        assert r["model"].startswith("Qwen2.5-Coder-1.5B") and r["thinking_tokens"] > 0


def test_offline_replay_reports_cuts_on_recorded_traces():
    rows = [_run(replay_trace(r)) for r in load_traces(TRACES)]
    for r in rows:
        assert r["tokens_total"] > 0 and 0 <= r["tokens_saved"] <= r["tokens_total"]
        assert r["thoughts"] >= 1 and not r["tokens_estimated"]
        assert r["decision"] in ("none", "overthinking", "underthinking", "repetition")
        if r["decision"] == "none":
            assert r["tokens_saved"] == 0 and r["cut_chars"] is None
    s = summarize(rows)
    assert s["traces"] == len(rows)
    assert s["tokens_saved"] == sum(r["tokens_saved"] for r in rows)


def test_offline_replay_with_a_small_budget_cuts_by_underthinking():
    row = load_traces(TRACES)[0]
    r = _run(replay_trace(row, budget=64))  # 50 % of 64 tokens: long before the trace ends
    assert r["decision"] == "underthinking"
    assert r["tokens_at_cut"] < r["tokens_total"] and r["tokens_saved"] > 0


def test_offline_replay_overthinking_on_a_trace_that_restates_its_answer():
    row = {"question": "What is 48 + 24?", "answer": "72",
           "trace": "48 + 24 = 72, so the answer is 72.\nWait, let me verify: 72 - 24 = 48. So the answer is 72.\n"
                    "Hmm, let me check once more by adding again: 40 + 20 = 60 and 8 + 4 = 12, 60 + 12 = 72.\n"
                    "But maybe I misread the question. " * 3,
           "thinking_tokens": 120}
    r = _run(replay_trace(row))
    assert r["decision"] == "overthinking" and r["cut_thought"] == 1
    assert r["answer_at_cut"] == "72" and r["correct_at_cut"]
    assert r["tokens_saved"] > 0


def test_offline_verifier_is_asked_only_about_unsure_thoughts():
    asked = []

    async def judge(question, thought):
        asked.append(thought)
        return "otal is" in thought

    row = {"question": "q", "answer": "72", "trace": "Half is 24.\n\nTotal is 72.\n\nWait, total is 72.\n\nDone.",
           "thinking_tokens": 40}
    r = _run(replay_trace(row, judge=judge))
    assert asked == ["Half is 24.", "Total is 72.", "Wait, total is 72."]
    assert r["decision"] == "overthinking" and r["verifier_calls"] == 3 and r["answer_at_cut"] == "72"


@pytest.mark.parametrize("content, msg", [
    ("not json\n", "not valid JSON"),
    ('{"question": "q", "answer": "1"}\n', "missing field(s) trace"),
    ("[1, 2]\n", "must be a JSON object"),
    ("\n\n", "no traces"),
])
def test_bad_trace_files_are_clear_errors(tmp_path, content, msg):
    p = tmp_path / "t.jsonl"
    p.write_text(content)
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        load_traces(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_traces(tmp_path / "missing.jsonl")


def test_cli_eval_trimr_json_and_errors(tmp_path):
    out = subprocess.run([JUNTO, "eval-trimr", str(TRACES), "--json", "--budget", "64"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["summary"]["traces"] == len(load_traces(TRACES))
    assert data["summary"]["decisions"].get("underthinking", 0) >= 1
    assert all("tokens_saved" in r for r in data["rows"])
    table = subprocess.run([JUNTO, "eval-trimr", str(TRACES)], capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "thinking tokens" in table.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    err = subprocess.run([JUNTO, "eval-trimr", str(bad)], capture_output=True, text=True, timeout=120)
    assert err.returncode != 0 and "missing field(s)" in err.stderr + err.stdout
    assert "Traceback" not in err.stderr


@pytest.mark.llamacpp
def test_cli_eval_trimr_with_a_real_verifier(embedded_pool):
    """--verifier asks a real server (the session's embedded SmolLM2, reused: the CLI stops only what it started)."""
    out = subprocess.run([JUNTO, "eval-trimr", str(TRACES), "--pool", "embedded", "--verifier", "smollm2-135m",
                          "--limit", "3", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["summary"]["verifier"] == "smollm2-135m" and data["summary"]["traces"] == 3
    # every thought the answer module was unsure of went to the verifier
    assert data["summary"]["verifier_calls"] == sum(1 for r in data["rows"] for t in r["trail"]
                                                    if t["by"] == "verifier") > 0
    bad = subprocess.run([JUNTO, "eval-trimr", str(TRACES), "--pool", "embedded", "--verifier", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "no deployment 'nope'" in bad.stderr + bad.stdout


# -- the thinking path's pure helpers -----------------------------------------------------------

def test_final_answer_prefers_the_answer_then_the_thinking_then_the_monitor():
    from junto.reasoning.trimr.run import final_answer

    assert final_answer("Answer: 4", "the answer is 5", "number", "6") == ("4", "answer")
    # concluded inside the thinking, summarised after it without a number
    assert final_answer("We add and divide.", "So 20.06 / 5 = 4.012.\nAnswer: 4.012", "number", None) == \
        ("1003/250", "thinking")
    # a step's value in the thinking is no stated answer
    assert final_answer("no idea", "48 / 2 = 24", "number", "72") == ("72", "monitor")
    assert final_answer("", "", "number", None) == (None, None)


def test_thinking_messages():
    from junto.pool.config import Thinking
    from junto.reasoning.trimr.run import DEFAULT_THINKING_PROMPT, question_of, thinking_messages

    user = [{"role": "user", "content": "q?"}]
    assert thinking_messages(user, None) == [{"role": "system", "content": DEFAULT_THINKING_PROMPT}, *user]
    assert thinking_messages(user, Thinking()) == user  # a reasoning model: no prompt added
    with_sys = [{"role": "system", "content": "Be brief."}, *user]
    got = thinking_messages(with_sys, Thinking(prompt="Think in tags."))
    assert got[0] == {"role": "system", "content": "Be brief.\n\nThink in tags."} and got[1:] == user
    assert with_sys[0]["content"] == "Be brief."  # the caller's messages are not changed
    assert question_of([*user, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}]) == "q2"
    assert question_of([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]) == "hi"


@pytest.mark.parametrize("trace", ["Wait, 1 + 1 = 2.\n" * 1200, "\n" * 20_000, "x" * 20_000,
                                   "Hmm. " * 4000, "So the answer is 5.\n\n" * 1000])
def test_offline_replay_is_fast_on_long_traces(trace):
    t0 = time.perf_counter()
    r = _run(replay_trace({"question": "q", "answer": "2", "trace": trace}, budget=10**9, max_thoughts=10**9))
    assert time.perf_counter() - t0 < 2.0
    assert r["tokens_estimated"] is True and r["tokens_total"] == -(-len(trace.strip()) // 4)
