"""Step scorers (junto.reasoning.ets.scorers): arith as pure logic (on hand-written cases and on the labelled
steps of BIG-Bench Mistake), judge against the real Qwen2.5-Coder-0.5B on llama-server, prm against the
loopback stub in its vLLM-/pooling mode (format and fault injection — never a real PRM here), and config errors.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from junto.errors import BackendError, ConfigError
from junto.reasoning.ets.scorers import (ScorerSpec, StepScorer, arith_claims, arith_score, judge_messages,
                                         judge_probability, make_scorer, parse_scorer_spec, prm_rows_score)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "step-mistakes"
JUDGE = "qwen2.5-coder-0.5b"


# -- arith: hand-written cases ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, holds", [
    ("3 + 4 = 7", [True]),
    ("3 + 4 = 8", [False]),
    ("2 * 3 * 4 = 24", [True]),
    ("So 12 - 5 + 2 = 9 and 9 * 2 = 18.", [True, True]),
    ("(2 + 3) * 4 = 5 * 4 = 20", [True, True]),
    ("(2 + 3) * 4 = 2 + 3 * 4", [False]),             # precedence: 20 vs 14
    ("7 - -7 * 4 = 35", [True]),                      # unary minus binds to its number
    ("7 - -7 * 4 = 7 - 28 = -21", [False, True]),     # the data's own kind of slip
    ("(-6) + (18) = 12", [True]),
    ("1/2 + 1/4 = 3/4", [True]),
    ("1/3 + 1/3 = 0.67", [True]),                     # a decimal is held to the precision it is written with
    ("1/3 + 1/3 = 0.6", [False]),
    ("0.1 + 0.2 = 0.3", [True]),                      # exact: Fraction, not floats
    ("2.5 × 4 = 10", [True]),
    ("10 ÷ 4 = 2.5", [True]),
    ("He paid $1,200 + $300 = $1,500.", [True]),
    ("5 / 0 = 3", [False]),
    ("−3 + 5 = 2", [True]),                           # unicode minus
    ("Step 2: 4 * 5 = 20, then 20 + 1 = 22", [True, False]),
])
def test_claims(text, holds):
    assert [ok for _, ok in arith_claims(text)] == holds


@pytest.mark.parametrize("text", [
    "There are no numbers here.",
    "We have 3 apples and 4 pears.",
    "x = 5",                                          # a bare number is no claim
    "A = 12",
    "3x + 2 = 11",                                    # algebra with a name is not checked
    "The 2nd item = the 3rd item",
    "",
    "((((",
    "= = = 1 + = 2",
])
def test_no_claim_abstains(text):
    assert arith_claims(text) == []
    assert arith_score(text) == 0.5


def test_scores_are_hold_fail_abstain():
    assert arith_score("2 + 2 = 4") == 1.0
    assert arith_score("2 + 2 = 4 and 3 + 3 = 7") == 0.05
    assert arith_score("nothing to check") == 0.5
    assert arith_score("2 + 2 = 5", hold=0.9, fail=0.1, abstain=0.4) == 0.1


async def test_arith_scorer_scores_the_last_step_of_each_item():
    scorer = make_scorer({"kind": "arith"}, None, None)
    assert isinstance(scorer, StepScorer) and scorer.name == "arith"
    got = await scorer.score("q", [["2 + 2 = 5", "1 + 1 = 2"], ["1 + 1 = 2", "2 + 2 = 5"], ["no math"], []])
    assert got == [1.0, 0.05, 0.5, 0.5]


# -- arith on the labelled data ---------------------------------------------------------------------------

def _traces():
    from junto.jsonl import read_jsonl

    return [row for _, row in read_jsonl(DATA / "multistep_arithmetic.jsonl")]


def test_arith_on_the_datas_first_trace():
    tr = _traces()[0]  # C = ((3*4*5) * (7 - -7*4)) is worked as (7 - 28): the first mistake, step 3
    assert tr["mistake_index"] == 3
    assert [arith_score(s) for s in tr["steps"][:3]] == [0.5, 1.0, 1.0]
    assert arith_score(tr["steps"][3]) == 0.05
    bad = [c for c, ok in arith_claims(tr["steps"][3]) if not ok]
    assert len(bad) == 1 and "7 - 28" in bad[0]


def test_arith_separates_right_from_wrong_steps_on_multistep_arithmetic():
    from sklearn.metrics import roc_auc_score

    labels, scores, wrong_flagged, right_flagged, right = [], [], 0, 0, 0
    for tr in _traces():
        m = tr["mistake_index"]
        for k in range(len(tr["steps"]) if m is None else m + 1):
            s = arith_score(tr["steps"][k])
            label = int(m is None or k < m)
            labels.append(label)
            scores.append(s)
            wrong_flagged += (not label) and s == 0.05
            right_flagged += label and s == 0.05
            right += label
    # measured: AUROC 0.98 over the file; most labelled mistakes are arithmetic slips the checker catches
    assert roc_auc_score(labels, scores) > 0.9
    assert wrong_flagged > 0.7 * labels.count(0)
    assert right_flagged < 0.05 * right


# -- arith: adversarial input runs in linear time --------------------------------------------------------

MAX_CHARS = 20_000
LIMIT_S = 1.0
UNITS = ["(", ")", "1", "9" * 7, "1 ", "1+", "-", "- ", "--1", "1*", "1/", "1/3/", "(1+", "1)", "= ", "1 = ",
         "(1 = 1) ", "0.", "0.1", "1,", "1,000", "1,0000", "x", "$", "÷", "−", " ", ".", "a = 1 + ", "2 * 3 = 6 "]
_unit = st.sampled_from(UNITS) | st.text(alphabet="0123456789+-*/()=., x$", min_size=1, max_size=12)
_long = st.builds(lambda us, n: ("".join(us) * n)[:MAX_CHARS], st.lists(_unit, min_size=1, max_size=20),
                  st.integers(1, MAX_CHARS))


def _timed(text: str) -> float:
    t = time.perf_counter()
    arith_claims(text)
    return time.perf_counter() - t


@settings(max_examples=40, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(_long | st.text(max_size=MAX_CHARS))
def test_adversarial_text_is_checked_quickly(text):
    assert _timed(text) < LIMIT_S


@pytest.mark.parametrize("unit", UNITS)
def test_every_unit_at_full_length(unit):
    assert _timed((unit * (MAX_CHARS // len(unit)))[:MAX_CHARS]) < LIMIT_S


def test_huge_values_stay_cheap():
    # 20,000 chars of products and quotients: values grow, literals are capped at 40 digits
    for text in ("9" * 39 + " * ") * 500 + "1 = 1", ("1/" + "7" * 39 + " ") * 500 + "= 0", "(" * 10_000 + "1" + ")" * 9_999:
        assert _timed(text[:MAX_CHARS]) < LIMIT_S


# -- judge: pure parts -------------------------------------------------------------------------------------

def test_judge_probability_reads_yes_no_variants():
    top = [{"token": "Yes", "logprob": math.log(0.4)}, {"token": " yes", "logprob": math.log(0.1)},
           {"token": "No", "logprob": math.log(0.2)}, {"token": " NO", "logprob": math.log(0.05)},
           {"token": "Maybe", "logprob": math.log(0.2)}]
    assert judge_probability(top) == pytest.approx(0.5 / 0.75)
    assert judge_probability([{"token": "The", "logprob": -0.1}]) == 0.5
    assert judge_probability([]) == 0.5


def test_judge_prompt_keeps_the_last_step_and_the_nearest_earlier_ones():
    steps = [f"step {i} " + "x" * 500 for i in range(10)]
    text = judge_messages("What is 1+1?", steps)[0]["content"]
    assert "What is 1+1?" in text and "Last step:\nstep 9 " in text and "Step 9: step 8 " in text
    assert "Step 1: step 0" not in text and "omitted" in text
    assert len(text) < 4000
    assert "Earlier steps" not in judge_messages("q", ["only step"])[0]["content"]


# -- config --------------------------------------------------------------------------------------------------

def _pool(**dep):
    from junto.pool.config import parse_pool

    base = {"name": "d", "backend": "llamacpp", "model": "embedded:qwen2.5-coder-0.5b"}
    return parse_pool({"name": "p", "deployments": [{**base, **dep}]})


@pytest.mark.parametrize("data, words", [
    ({"kind": "judge"}, ["judge", "deployment"]),
    ({"kind": "prm"}, ["prm", "deployment"]),
    ({"kind": "magic"}, ["kind"]),
    ({"kind": "arith", "holdd": 1.0}, ["holdd"]),
    ({"kind": "arith", "fail": 0.7}, ["fail < abstain < hold"]),
    ({"kind": "judge", "deployment": "d", "top_logprobs": 3}, ["top_logprobs"]),
    ("nonsense", ["kind"]),
])
def test_spec_errors_are_clear(data, words):
    with pytest.raises(ConfigError) as err:
        parse_scorer_spec(data)
    msg = str(err.value)
    assert all(w in msg for w in words), msg
    assert "Traceback" not in msg and err.value.hint


def test_make_scorer_checks_the_pool():
    pool = _pool()
    with pytest.raises(ConfigError, match="'nope' is not in pool 'p'") as err:
        make_scorer({"kind": "judge", "deployment": "nope"}, None, pool)
    assert "d" in err.value.hint
    with pytest.raises(ConfigError, match="top_logprobs"):
        make_scorer({"kind": "judge", "deployment": "d"}, None, _pool(capabilities={"top_logprobs": False}))
    with pytest.raises(ConfigError, match="vLLM"):
        make_scorer({"kind": "prm", "deployment": "d"}, None, pool)
    assert make_scorer(ScorerSpec(kind="judge", deployment="d"), None, pool).name == "judge:d"


def test_prm_rows():
    assert prm_rows_score([[0.1, 0.9], [0.7, 0.3]]) == 0.3
    for bad in ([], None, [[0.5]], [[-2.0, 3.1]], [[0.2, float("nan")]]):
        with pytest.raises(ValueError):
            prm_rows_score(bad)


# -- prm against the loopback stub (vLLM's /pooling response shape; NOT a real PRM) ----------------------

def _prm_pool(url: str):
    from junto.pool.config import parse_pool

    return parse_pool({"name": "gpu", "deployments": [{"name": "prm", "backend": "vllm", "model": "Qwen/Qwen2.5-Math-PRM-7B",
                                                       "url": url, "max_concurrency": 4}]})


async def test_prm_scores_the_last_step_from_the_pooling_rows():
    from helpers import stub_server

    from junto.pool.client import PoolClient

    with stub_server("ok") as (url, _):
        pool = _prm_pool(url)
        async with PoolClient(pool) as client:
            scorer = make_scorer({"kind": "prm", "deployment": "prm"}, client, pool)
            assert isinstance(scorer, StepScorer) and scorer.name == "prm:prm"
            got = await scorer.score("What is 2 + 2?", [["2 + 2 = 4"], ["2 + 2 = 4", "so this is wrong"],
                                                        ["a wrong start", "then fine"],
                                                        ["a step holding <extra_0> the separator"]])
            assert got == [0.9, 0.2, 0.9, 0.9]
            body = scorer.body("Q", ["a", "b <extra_0> c"])
            assert body["task"] == "token_classify" and body["messages"][-1] == {
                "role": "assistant", "content": "a<extra_0>b   c<extra_0>"}


@pytest.mark.parametrize("mode, words", [("prm_nosep", "step_separator"), ("prm_logits", "not a probability"),
                                         ("error500", "stub failure"), ("garbage", "malformed")])
async def test_prm_format_faults_are_clear_errors(mode, words):
    from helpers import stub_server

    from junto.pool.client import PoolClient

    with stub_server(mode) as (url, _):
        pool = _prm_pool(url)
        async with PoolClient(pool) as client:
            scorer = make_scorer({"kind": "prm", "deployment": "prm"}, client, pool)
            with pytest.raises(BackendError) as err:
                await scorer.score("q", [["one step"]])
            assert words in (str(err.value) + str(err.value.hint or "")), str(err.value)


# -- judge against the real Qwen2.5-Coder-0.5B ----------------------------------------------------------

@pytest.fixture
def judge_pool(qwen05_pool):
    """The session's Qwen2.5-Coder-0.5B server (tests/conftest.py)."""
    return qwen05_pool


@pytest.mark.llamacpp
@pytest.mark.slow
async def test_judge_on_the_real_model(judge_pool):
    from junto.pool.client import PoolClient

    pool, endpoints = judge_pool
    q = "What is 17 + 25?"
    items = [["17 + 25 = 42."], ["17 + 25 = 32."], ["First add the tens: 10 + 20 = 30.", "Then 30 + 7 + 5 = 42."]]
    async with PoolClient(pool, endpoints) as client:
        scorer = make_scorer({"kind": "judge", "deployment": JUDGE}, client, pool)
        assert isinstance(scorer, StepScorer)
        got = await scorer.score(q, items)
        # what must hold: one probability per item, in order, read from Yes/No among the top tokens
        assert len(got) == 3 and all(0.0 < p < 1.0 and math.isfinite(p) for p in got)
        assert scorer.undecided == 0
        again = await scorer.score(q, items[::-1])
        assert again[::-1] == pytest.approx(got, abs=0.05)  # order kept, greedy verdicts stable under batching
