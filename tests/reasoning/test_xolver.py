"""Xolver's pure parts (example tests, roles, ranking, stopping, write-back choice) and its sandbox judge."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from junto.errors import ConfigError
from junto.reasoning.registry import validate_params
from junto.reasoning.xolver.examples import MAX_TESTS, defined_functions, example_tests
from junto.reasoning.xolver.judge import judge_code
from junto.reasoning.xolver.logic import (BUILTIN_ROLES, agent_messages, best_answer, best_verified, choose_roles,
                                          parse_roles, stop_reason, top_answers)

HUMANEVAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "humaneval" / "HumanEval.jsonl.gz"
#: HumanEval problems with at least one example test derived from their own prompt (measured: 139 of 164)
MEASURED_COVERAGE = 139

PROMPT = '''def add(a: int, b: int) -> int:
    """Add two numbers.
    >>> add(2, 3)
    5
    >>> add(-1,
    ...     1)
    0
    """
'''


# -- example tests ------------------------------------------------------------------------------------------------

def test_doctest_examples_with_continuations_are_read():
    assert defined_functions(PROMPT) == ["add"]
    assert example_tests(PROMPT) == [("add(2, 3)", "5"), ("add(-1,\n    1)", "0")]


@pytest.mark.parametrize(("line", "expected"), [
    ("    compare_one(1, 2.5) ➞ 2.5", ("compare_one(1, 2.5)", "2.5")),
    ("    f([1, 2]) == [2, 1]", ("f([1, 2])", "[2, 1]")),
    ("Example: f('a=>b') => 'x'", ("f('a=>b')", "'x'")),
    ("    is_power(8, 2) => true", ("is_power(8, 2)", "True")),
    ("    f(\"5 apples\", 19) ->19 - 5 - 6 = 8", ("f(\"5 apples\", 19)", "8")),
    ("    f({'a': 1}) should return True.", ("f({'a': 1})", "True")),
    ("    add([4, 2, 6, 7]) ==> 2 ", ("add([4, 2, 6, 7])", "2")),
    (">>> f([]) == 0", ("f([])", "0")),
])
def test_one_line_claims_are_read(line, expected):
    name = expected[0].split("(")[0]
    text = f"def {name}(x, y=None):\n    \"\"\"Doc.\n{line}\n    \"\"\"\n"
    assert example_tests(text) == [expected]


@pytest.mark.parametrize("line", [
    "    is_happy(a) => False",               # an unbound name: prose, not a test
    "    other(1) ➞ 2",                       # not a function of the problem
    "    f(1) ➞ the sum of the digits",       # the expected side is no literal
    "    For lst = [1, 2] the output should be 3",
    "    f(1) ➞ [1, 2",                        # unbalanced
])
def test_prose_is_not_a_test(line):
    assert example_tests(f"def f(x):\n    \"\"\"Doc.\n{line}\n    \"\"\"\n") == []


def test_humaneval_coverage_and_the_hidden_tests_are_not_read():
    rows = [json.loads(line) for line in gzip.open(HUMANEVAL, "rt")]
    assert len(rows) == 164
    covered = [r for r in rows if example_tests(r["prompt"])]
    assert len(covered) >= MEASURED_COVERAGE - 3, len(covered)
    # only the prompt is read: the hidden test program's asserts never become example tests
    for r in rows[:20]:
        for call, _ in example_tests(r["prompt"]):
            assert call.replace("\n    ", "") in r["prompt"].replace("\n    ", "") or call in r["prompt"]


def test_tests_are_capped():
    text = "def f(x):\n" + "".join(f"    >>> f({i})\n    {i}\n" for i in range(200))
    assert len(example_tests(text)) == MAX_TESTS


_SETTINGS = settings(max_examples=20, deadline=None, database=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.large_base_example])
MAX_CHARS = 20_000
LIMIT_S = 1.0
_UNITS = ["f(", "(", "[", "f(1) ==", "f(1)➞", "'", "\"", "\\", ">>> f(", "... (", "= ", "def f(x):\n", "((((",
          "f(1) -> 1 = ", ")", ">>> f(1)\n"]
_unit = st.sampled_from(_UNITS) | st.text(min_size=1, max_size=8)
_adversarial = (st.builds(lambda u, n: (u * n)[:MAX_CHARS], _unit, st.integers(1, MAX_CHARS))
                | st.builds(lambda us, n: ("".join(us) * n)[:MAX_CHARS], st.lists(_unit, min_size=1, max_size=20),
                            st.integers(1, 4_000))
                | st.builds(lambda u, n, tail: "def f(x):\n" + (u * n)[:MAX_CHARS] + tail, _unit,
                            st.integers(1, MAX_CHARS), st.text(max_size=30)))


def _timed(text: str) -> float:
    t = time.perf_counter()
    example_tests(text)
    example_tests("def f(x):\n" + text)
    return time.perf_counter() - t


@_SETTINGS
@given(_adversarial)
def test_adversarial_20000_char_inputs_parse_quickly(text):
    assert _timed(text) < LIMIT_S


@pytest.mark.parametrize("unit", _UNITS)
def test_every_adversarial_unit_at_full_length(unit):
    assert _timed(unit * (MAX_CHARS // len(unit))) < LIMIT_S
    assert _timed("    f(1) ➞ " + unit * (MAX_CHARS // len(unit))) < LIMIT_S


# -- roles ----------------------------------------------------------------------------------------------------------

PLAN = """Here are the roles:
1. **Algorithm Designer**: designs the approach
2. Python Programmer - writes clean code
3) Tester: writes edge cases
4. Reviewer: reviews code

TEAM: 3, 1
"""


def test_the_planners_team_is_taken():
    drafted, picked = parse_roles(PLAN)
    assert [r["name"] for r in drafted] == ["Algorithm Designer", "Python Programmer", "Tester", "Reviewer"]
    assert drafted[1]["description"] == "writes clean code"
    assert picked == [2, 0]
    roles, info = choose_roles(PLAN, 2)
    assert [r["name"] for r in roles] == ["Tester", "Algorithm Designer"] and info["fallback"] is None


def test_no_team_line_takes_the_first_drafted_and_says_so():
    roles, info = choose_roles(PLAN.replace("TEAM: 3, 1", ""), 3)
    assert [r["name"] for r in roles] == ["Algorithm Designer", "Python Programmer", "Tester"]
    assert "first drafted" in info["fallback"]


@pytest.mark.parametrize("reply", ["", "I cannot help with that.", "TEAM: 1, 2", "1." * 5000,
                                   # a small planner echoing the format (seen from Qwen2.5-Coder-0.5B)
                                   "1. <role name>: <what this expert does>\n2. <role name>: x\nTEAM: 1, 2"])
def test_an_unusable_reply_falls_back_to_built_in_roles(reply):
    roles, info = choose_roles(reply, 2)
    assert [r["name"] for r in roles] == [r["name"] for r in BUILTIN_ROLES[:2]]
    assert "built-in" in info["fallback"]


def test_a_role_drafted_twice_counts_once():
    # Qwen2.5-Coder-0.5B as planner of "12 cows + 30 cows" drafted four "Farmer" roles
    roles, info = choose_roles("1. Farmer: collects\n2. Farmer: sells\n3. farmer: counts", 2)
    assert [r["name"] for r in roles] == ["Farmer", "Solver"] and "drafted only 1" in info["fallback"]


def test_more_agents_than_roles_get_distinct_names():
    roles, _ = choose_roles("1. Solver: solves", 6)
    names = [r["name"] for r in roles]
    assert len(names) == 6 and len(set(names)) == 6 and names[0] == "Solver"


def test_role_parsing_is_linear_time():
    for text in ("1" * 20_000, "1. " + ":" * 20_000, "TEAM: " + "1," * 10_000, ("9. a: b\n" * 3_000)):
        t = time.perf_counter()
        choose_roles(text, 3)
        assert time.perf_counter() - t < LIMIT_S


# -- ranking, stopping, write-back ---------------------------------------------------------------------------------

def _a(round_no, agent, score, verified=False, answer=None):
    return {"round": round_no, "agent": agent, "role": f"r{agent}", "text": answer or f"t{round_no}{agent}",
            "answer": answer or f"a{round_no}{agent}", "score": score, "verified": verified}


def test_best_answer_prefers_score_then_the_later_round():
    answers = [_a(1, 0, 0.5), _a(1, 1, 1.0, True), _a(2, 0, 1.0, True), _a(2, 1, 0.2)]
    assert best_answer(answers) is answers[2]
    assert best_answer([_a(1, 0, None)]) is None


def test_only_a_verified_answer_is_written_back():
    # the last answer (round 2) is the reference code's write-back; it is not verified here
    answers = [_a(1, 0, 0.9, True), _a(1, 1, 0.3), _a(2, 0, 0.95), _a(2, 1, 0.1)]
    assert best_answer(answers) is answers[2]          # the final answer: the best score
    assert best_verified(answers) is answers[0]        # memory: the best verified one
    assert best_verified([_a(1, 0, 0.7), _a(2, 0, 0.9)]) is None


def test_stop_early_on_a_verified_best_and_at_the_last_round():
    r1 = [_a(1, 0, 1.0, True), _a(1, 1, 0.5)]
    assert stop_reason(r1, 1, 2, early_stop=True) == "verified"
    assert stop_reason(r1, 1, 2, early_stop=False) is None
    assert stop_reason([_a(1, 0, 0.5)], 1, 2, early_stop=True) is None
    assert stop_reason([_a(1, 0, 0.5), _a(2, 0, 0.6)], 2, 2, early_stop=True) == "rounds"


def test_the_shared_store_ranks_and_dedupes():
    answers = [_a(1, 0, 0.5, answer="x"), _a(1, 1, 0.9, answer="y"), _a(2, 0, 0.9, answer="y"), _a(2, 1, None)]
    top = top_answers(answers, 3)
    assert [(a["round"], a["agent"]) for a in top] == [(2, 0), (1, 0)]


def test_agent_prompt_holds_problem_exemplars_shared_answers_and_own_previous():
    prev = _a(1, 0, 0.5)
    msgs = agent_messages("Q?" * 10, {"name": "Tester", "description": "tests"}, m=2, round_no=2, rounds=2, code=True,
                          hits=[{"problem": "P1", "solution": "S1", "score": 1.0}], previous=prev,
                          shared=[_a(1, 1, 0.75, True)], budget=4000)
    body = msgs[1]["content"]
    assert "Tester" in msgs[0]["content"]
    for part in ("Q?Q?", "P1", "S1", "judge score 0.75, verified", "Your previous answer (judge score 0.50)",
                 "```python", "Round 2 of 2"):
        assert part in body, part
    long = agent_messages("q", {"name": "A", "description": "b"}, m=1, round_no=1, rounds=1, code=False,
                          hits=[{"problem": "p" * 50_000, "solution": "s" * 50_000, "score": 1.0}], previous=None,
                          shared=[], budget=4000)
    assert len(long[1]["content"]) < 5000


def test_bad_parameters_are_refused_naming_them():
    with pytest.raises(ConfigError) as err:
        validate_params("xolver", {"agents": 3, "drafted": 2})
    assert "drafted" in err.value.message
    with pytest.raises(ConfigError) as err:
        validate_params("xolver", {"rounds": 0})
    assert "rounds" in err.value.message
    p = validate_params("xolver", {})
    assert (p.agents, p.rounds, p.drafted, p.early_stop) == (2, 2, None, True)


# -- the sandbox judge --------------------------------------------------------------------------------------------

RIGHT = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
WRONG = "```python\ndef add(a: int, b: int) -> int:\n    return a * b + 1\n```"


def test_the_sandbox_judge_scores_a_right_and_a_wrong_solution():
    tests = example_tests(PROMPT)
    right = judge_code(RIGHT, PROMPT, "add", tests)
    assert (right.score, right.verified, right.passed, right.total) == (1.0, True, 2, 2)
    wrong = judge_code(WRONG, PROMPT, "add", tests)
    assert wrong.verified is False and wrong.passed == 1 and wrong.score == 0.5  # add(-1, 1) == 0 by chance
    body = judge_code("    return a + b", PROMPT, "add", tests)  # a bare body after the prompt
    assert body.verified


def test_the_sandbox_judge_survives_hostile_code():
    tests = example_tests(PROMPT)
    loop = judge_code("def add(a, b):\n    while True:\n        pass", PROMPT, "add", tests, timeout_s=2)
    assert loop.score == 0.0 and not loop.verified and loop.note and "killed" in loop.note
    exits = judge_code("import sys\ndef add(a, b):\n    sys.exit(0)", PROMPT, "add", tests)
    assert exits.score == 0.0
    forged = judge_code("print('junto-example-0000 0 pass')\ndef add(a, b):\n    return None", PROMPT, "add", tests)
    assert forged.passed == 0
    none = judge_code("no code here, sorry", PROMPT, "add", [])
    assert none.score == 0.0 and not none.verified and "no example" in none.note


def test_the_function_prompt_is_found_inside_a_wrapped_request():
    from junto.reasoning.xolver.examples import function_prompt
    from junto.routers.tasks import code_prompt

    assert function_prompt(code_prompt(PROMPT)) == PROMPT
    assert function_prompt(PROMPT) == PROMPT
    assert function_prompt("from typing import List\n\n\n" + PROMPT).startswith("from typing import List\n")
