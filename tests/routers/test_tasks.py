"""Real tasks for calibration (junto.routers.tasks): conversion of every task shape of the shared routing data,
the code grader (tests run in the sandbox), the coverage metric, the calibration wiring, and `junto route dataset`.

Rows are read from the shared data in place ($JUNTO_ROUTING_DATA, default ../shared/data/routing); tests that need
it skip without it.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from helpers import run_cli
from junto.errors import ConfigError
from junto.routers.calibrate import Item, build_messages, load_dataset, parse_dataset, score_answer
from junto.routers.tasks import (
    CALIBRATION_METRICS, ROUTING_TASKS, SkipItem, assemble_program, build_dataset, concept_coverage,
    convert_gsm8k_row, convert_humaneval_row, convert_routing_row, dumps_items, extract_code, grade_code,
    grade_item, parse_choices, parse_per_task, read_rows, stem,
)

ROOT = Path(__file__).resolve().parents[2]


def routing_data_dir() -> Path:  # as in this folder's conftest
    return Path(os.environ.get("JUNTO_ROUTING_DATA", ROOT.parent / "shared" / "data" / "routing"))


SHARED = routing_data_dir().parent
QUERIES = routing_data_dir() / "queries_train.jsonl"
GSM8K = SHARED / "gsm8k" / "train.jsonl"
HUMANEVAL = SHARED / "humaneval" / "HumanEval.jsonl.gz"
DATASETS = ROOT / "configs" / "datasets"


def need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="module")
def rows() -> dict[int, dict]:
    """The query file's rows by line number."""
    return dict(read_rows(need(QUERIES)))


def first_of(rows: dict[int, dict], task: str) -> dict:
    return next(r for _, r in sorted(rows.items()) if r["task_name"] == task)


def by_task_id(rows: dict[int, dict], task: str, task_id: str) -> dict:
    return next(r for r in rows.values() if r["task_name"] == task and r["task_id"] == task_id)


# -- conversion of each task shape (real rows) ---------------------------------------------------------------------

def test_every_task_is_known(rows):
    assert {r["task_name"] for r in rows.values()} == set(ROUTING_TASKS)
    assert set(ROUTING_TASKS.values()) <= set(CALIBRATION_METRICS)


def test_mc_with_a_dict_of_text_and_label(rows):
    item = convert_routing_row(first_of(rows, "commonsense_qa"))
    assert item["metric"] == "mc" and item["answer"] == "B"
    assert item["choices"] == ["bus depot", "train station", "beach", "bridge", "taxi"]
    grid = convert_routing_row(first_of(rows, "agentverse-logicgrid"))
    assert grid["choices"] == ["1", "2", "3"] and grid["answer"] == "C"


def test_mc_with_a_list(rows):
    item = convert_routing_row(first_of(rows, "mmlu"))
    assert item["choices"] == ["$100", "$150", "$200", "$250"] and item["answer"] == "D"
    gpqa = convert_routing_row(first_of(rows, "gpqa"))
    assert gpqa["choices"] == ["polyA tail", "antisense", "R-loops", "lariat"] and gpqa["answer"] == "C"


def test_mc_with_numeric_labels_becomes_a_letter(rows):
    row = rows[5194]  # arc_challenge, labels '1'..'4', truth '1'
    assert row["task_name"] == "arc_challenge" and row["ground_truth"] == "1"
    item = convert_routing_row(row)
    assert item["choices"] == ["competition", "conservation", "decomposition", "pollution"]
    assert item["answer"] == "A"


def test_gsm8k_takes_the_number_after_the_marks(rows):
    item = convert_routing_row(first_of(rows, "gsm8k"))
    assert item == {"question": first_of(rows, "gsm8k")["query"], "metric": "numeric", "answer": "20000"}


def test_math_takes_the_last_box(rows):
    item = convert_routing_row(first_of(rows, "math"))
    assert item["metric"] == "math" and item["answer"] == "494550"
    mgsm = convert_routing_row(first_of(rows, "agentverse-mgsm"))
    assert mgsm["metric"] == "math" and mgsm["answer"] == "28"


def test_math_references_that_cannot_be_graded_are_skipped(rows):
    for n in (4450, 4592):  # \boxed{A} and a matrix: no canonical math form
        assert rows[n]["task_name"] == "math"
        with pytest.raises(SkipItem, match="canonical"):
            convert_routing_row(rows[n])


def test_f1_keeps_the_answer_text(rows):
    item = convert_routing_row(first_of(rows, "natural_qa"))
    assert item == {"question": "who sings i've got to be me", "metric": "f1", "answer": "Sammy Davis, Jr"}
    assert convert_routing_row(first_of(rows, "trivia_qa"))["answer"] == "bayreuth germany"


def test_mbpp_tests_are_the_asserts_and_shown_in_the_question(rows):
    row = by_task_id(rows, "mbpp", "672")
    item = convert_routing_row(row)
    asserts = ["assert max_of_three(10,20,30)==30", "assert max_of_three(55,47,39)==55",
               "assert max_of_three(10,49,30)==49"]
    assert item["metric"] == "code" and item["answer"] == "\n".join(asserts) + "\n"
    assert item["question"].startswith("Write a function to find maximum of three numbers.")
    assert item["question"].endswith("\n".join(asserts))


def test_human_eval_tests_are_check_and_its_call(rows):
    row = by_task_id(rows, "human_eval", "HumanEval/0")
    item = convert_routing_row(row)
    assert item["metric"] == "code" and item["entry_point"] == "has_close_elements"
    assert item["question"] == row["query"]
    assert "def check(candidate):" in item["answer"]
    assert item["answer"].rstrip().endswith("check(has_close_elements)")


def test_human_eval_entry_points_match_the_human_eval_file(rows):
    he = {r["task_id"]: r for _, r in read_rows(need(HUMANEVAL))}
    items = [convert_routing_row(r) | {"task_id": r["task_id"]} for r in rows.values()
             if r["task_name"] == "human_eval"]
    assert len(items) == 164
    for it in items:
        assert it["entry_point"] == he[it["task_id"]]["entry_point"]


def test_commongen_concepts(rows):
    item = convert_routing_row(first_of(rows, "commongen"))
    assert item["metric"] == "coverage" and len(item["answer"]) == 22
    assert item["answer"][:3] == ["report", "wheelbarrow", "country"]


def test_gsm8k_and_human_eval_files():
    _, row = read_rows(need(GSM8K))[0]
    item = convert_gsm8k_row(row)
    assert item["metric"] == "numeric" and item["answer"] == "72"
    _, he = read_rows(need(HUMANEVAL))[0]
    item = convert_humaneval_row(he)
    assert item["entry_point"] == "has_close_elements" and item["question"] == he["prompt"]


@pytest.mark.parametrize(("choices", "truth", "why"), [
    ("['a', 'b', 'c', 'd']", "F", "not the letter of an option"),
    ("{'text': ['a', 'b'], 'label': ['A', 'B', 'C']}", "A", "labels do not match"),
    ("{'text': ['a', 'b'], 'label': ['A', 'B']}", "C", "not one of the labels"),
    ("['only one']", "A", "2 to 10 options"),
    ("['a', 'b'", "A", "not a Python literal"),
    ("__import__('os').system('true')", "A", "not a Python literal"),
])
def test_bad_choices_are_refused(choices, truth, why):
    with pytest.raises(SkipItem, match=why):
        parse_choices(choices, truth)


@pytest.mark.parametrize(("row", "why"), [
    ({"task_name": "gsm8k", "query": "q", "ground_truth": "no marks here", "metric": "GSM8K"}, "####"),
    ({"task_name": "gsm8k", "query": "q", "ground_truth": "#### lots", "metric": "GSM8K"}, "not a number"),
    ({"task_name": "math", "query": "q", "ground_truth": "no box", "metric": "MATH"}, "boxed"),
    ({"task_name": "mbpp", "query": "q", "ground_truth": "['print(1)']", "metric": "code_eval"}, "not an assert"),
    ({"task_name": "mbpp", "query": "q", "ground_truth": "['assert f(1) ==']", "metric": "code_eval"},
     "not valid Python"),
    ({"task_name": "human_eval", "query": "def f(:", "ground_truth": "def check(c): pass", "metric": "code_eval"},
     "prompt is not valid Python"),
    ({"task_name": "natural_qa", "query": "q", "ground_truth": " ", "metric": "f1_score"}, "empty answer"),
    ({"task_name": "x", "query": "q", "ground_truth": "a", "metric": "bleu"}, "unknown metric"),
])
def test_bad_references_are_skipped(row, why):
    with pytest.raises(SkipItem, match=why):
        convert_routing_row(row)


# -- the code grader -------------------------------------------------------------------------------------------------

MBPP_GOOD = """Here you go:

```python
def max_of_three(a, b, c):
    return max(a, b, c)
```
"""
MBPP_BAD = "```python\ndef max_of_three(a, b, c):\n    return a if a > b else b\n```"
REVERSE_GOOD = """```python
def reverse_Array_Upto_K(arr, k):
    return arr[:k][::-1] + arr[k:]
```"""
REVERSE_BAD = """```python
def reverse_Array_Upto_K(arr, k):
    return arr[::-1]
```"""
HE0_GOOD = '''```python
from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    s = sorted(numbers)
    return any(b - a < threshold for a, b in zip(s, s[1:]))
```'''
HE0_BAD = '''```python
def has_close_elements(numbers, threshold):
    return any(abs(a - b) <= threshold for a, b in zip(numbers, numbers[1:]))
```'''
HE0_BODY = "    s = sorted(numbers)\n    return any(b - a < threshold for a, b in zip(s, s[1:]))\n"


@pytest.fixture(scope="module")
def code_items(rows) -> dict[str, dict]:
    return {"mbpp672": convert_routing_row(by_task_id(rows, "mbpp", "672")),
            "mbpp644": convert_routing_row(by_task_id(rows, "mbpp", "644")),
            "he0": convert_routing_row(by_task_id(rows, "human_eval", "HumanEval/0"))}


def test_mbpp_correct_and_incorrect(code_items):
    for key, good, bad in (("mbpp672", MBPP_GOOD, MBPP_BAD), ("mbpp644", REVERSE_GOOD, REVERSE_BAD)):
        it = code_items[key]
        assert grade_item("code", good, it["answer"], question=it["question"]) == 1.0
        assert grade_item("code", bad, it["answer"], question=it["question"]) == 0.0


def test_human_eval_correct_incorrect_and_body_only(code_items):
    it = code_items["he0"]
    assert grade_item("code", HE0_GOOD, it["answer"], question=it["question"]) == 1.0
    assert grade_item("code", HE0_BAD, it["answer"], question=it["question"]) == 0.0
    # a reply with the body only is completed with the prompt, as HumanEval intends
    assert grade_item("code", HE0_BODY, it["answer"], question=it["question"]) == 1.0
    assert grade_item("code", HE0_BODY.replace("    ", ""), it["answer"], question=it["question"]) == 1.0


@pytest.mark.parametrize("cheat", [
    "import sys\nsys.exit(0)",
    "import os\nos._exit(0)",
    "import atexit, os\natexit.register(lambda: os._exit(0))\nraise SystemExit(0)",
    "print = lambda *a, **k: None\nimport sys\nsys.stdout = open(__import__('os').devnull, 'w')",
])
def test_exiting_early_does_not_pass(code_items, cheat):
    it = code_items["mbpp672"]
    assert grade_item("code", f"```python\n{cheat}\n```", it["answer"], question=it["question"]) == 0.0


def test_endless_and_empty_code_fail(code_items):
    it = code_items["mbpp672"]
    assert grade_code("```python\nwhile True:\n    pass\n```", it["answer"], timeout_s=1.5) == 0.0
    assert grade_item("code", "", it["answer"], question=it["question"]) == 0.0
    assert grade_item("code", "I cannot help with that.", it["answer"], question=it["question"]) == 0.0


def test_human_eval_items_of_the_default_set_pass_with_their_canonical_solution():
    he = {r["task_id"]: r for _, r in read_rows(need(HUMANEVAL))}
    items = [json.loads(line) for line in (DATASETS / "local-calibration.jsonl").read_text().split("\n") if line]
    code = [it for it in items if it["task"] == "human_eval"]
    assert len(code) == 20
    for it in code:
        ref = he[it["task_id"]]
        solution = f"```python\n{ref['prompt']}{ref['canonical_solution']}```"
        assert grade_item("code", solution, it["answer"], question=it["question"]) == 1.0, it["task_id"]
        stub = f"```python\n{ref['prompt']}    return None\n```"
        assert grade_item("code", stub, it["answer"], question=it["question"]) == 0.0, it["task_id"]


@pytest.mark.parametrize(("reply", "code"), [
    ("```python\nA\n```\ntext\n```python\nB\n```", "B"),
    ("```\nuntagged\n```", "untagged"),
    ("```js\nx\n```\n```\nplain\n```", "plain"),
    ("```python\nfirst\n```\n```\nsecond\n```", "first"),
    ("Sure:\n```python\ndef f():\n    return 1", "def f():\n    return 1"),
    ("def f():\n    return 2", "def f():\n    return 2"),
    ("```Python3\nX\n```", "X"),
])
def test_extract_code(reply, code):
    assert extract_code(reply) == code


def test_extract_code_is_linear():
    import time

    reply = "```\n" * 50_000 + "```python\nok\n```"
    t0 = time.perf_counter()
    extract_code(reply)
    assert time.perf_counter() - t0 < 1.0


def test_assemble_program_places_the_prompt_first_for_human_eval():
    tests = "def check(candidate):\n    assert candidate() == 1\n\n\ncheck(f)\n"
    prompt = "import math\n\n\ndef f():\n    \"\"\"One.\"\"\"\n"
    prog = assemble_program("def f():\n    return 1", tests, prompt)
    assert prog.index("import math") < prog.index("return 1") < prog.index("def check")
    assert assemble_program("assert True", "assert f() == 1\n", prompt).startswith("assert True")


# -- coverage ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("words", [
    ("drive", "drives", "driving", "drove", "driven", "DRIVE"),
    ("dish", "dishes"),
    ("country", "countries"),
    ("run", "running", "ran", "runs"),
    ("remove", "removed", "removing"),
    ("skateboard", "skateboarding", "skateboards"),
    ("sell", "sold", "selling"),
    ("hedge", "hedges"),
    ("glass", "glasses"),
    ("child", "children"),
    ("discuss", "discussed", "discusses", "discussing"),
])
def test_stem_groups_inflections(words):
    assert len({stem(w) for w in words}) == 1, {w: stem(w) for w in words}


def test_stem_keeps_different_words_apart():
    assert len({stem(w) for w in ("drive", "driver", "dish", "bus", "buses", "gas")}) == 5  # bus == buses


def test_concept_coverage():
    concepts = ["dog", "frisbee", "catch", "throw"]
    assert concept_coverage("The dog caught the frisbee that she threw.", concepts) == 1.0
    assert concept_coverage("A dog runs in the park.", concepts) == 0.25
    assert concept_coverage("", concepts) == 0.0
    assert concept_coverage("Dogs throwing frisbees", "dog, frisbee, catch, throw") == 0.75
    assert concept_coverage("anything", []) == 0.0


# -- wiring into calibration --------------------------------------------------------------------------------------

def test_parse_dataset_accepts_code_and_coverage():
    lines = [json.dumps({"id": "c", "question": "Write f.", "answer": "assert f() == 1\n", "metric": "code"}),
             json.dumps({"id": "g", "question": "dog, ball", "answer": ["dog", "ball"], "metric": "coverage"})]
    items = parse_dataset(lines)
    assert [i.metric for i in items] == ["code", "coverage"]


@pytest.mark.parametrize(("item", "msg"), [
    ({"question": "q", "answer": "a", "metric": "bleu"}, "code, coverage"),
    ({"question": "q", "answer": "assert (", "metric": "code"}, "not valid Python"),
    ({"question": "q", "answer": "print(1)", "metric": "code"}, "no assert"),
    ({"question": "q", "answer": ["assert f()", "x"], "metric": "code"}, "test program"),
    ({"question": "q", "answer": " , ", "metric": "coverage"}, "concept words"),
])
def test_parse_dataset_refuses_bad_items(item, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_dataset([json.dumps(item)])


def test_prompts_for_code_and_coverage(rows, code_items):
    he = code_items["he0"]
    msg = build_messages(Item("h", he["question"], he["answer"], "code"))[0]["content"]
    assert "```python" in msg and "def has_close_elements" in msg and "check(" not in msg
    mb = code_items["mbpp672"]
    msg = build_messages(Item("m", mb["question"], mb["answer"], "code"))[0]["content"]
    assert "assert max_of_three(10,20,30)==30" in msg and "```python" in msg
    msg = build_messages(Item("g", "dog, frisbee", ["dog", "frisbee"], "coverage"))[0]["content"]
    assert msg.endswith("uses every one of these words: dog, frisbee.")


def test_score_answer_grades_code_and_coverage(code_items):
    mb = code_items["mbpp672"]
    item = Item("m", mb["question"], mb["answer"], "code")
    assert score_answer(item, MBPP_GOOD) == 1.0 and score_answer(item, MBPP_BAD) == 0.0
    he = code_items["he0"]
    assert score_answer(Item("h", he["question"], he["answer"], "code"), HE0_BODY) == 1.0
    assert score_answer(Item("g", "dog, frisbee", ["dog", "frisbee"], "coverage"), "Dogs love frisbees.") == 1.0
    assert score_answer(Item("n", "2+2?", "4", "numeric"), "Answer: 4") == 1.0  # the others are unchanged


# -- building calibration sets -------------------------------------------------------------------------------------

def test_build_dataset_is_stratified_and_deterministic():
    items, summary = build_dataset(need(QUERIES), per_task=5, seed=3)
    assert len(items) == 70 == summary["items"]
    assert [it["task"] for it in items[:14]] == sorted(ROUTING_TASKS)  # round-robin: any prefix is stratified
    assert all(s["selected"] == 5 for s in summary["tasks"].values())
    again, _ = build_dataset(need(QUERIES), per_task=5, seed=3)
    assert again == items
    other, _ = build_dataset(need(QUERIES), per_task=5, seed=4)
    assert other != items
    assert len({it["id"] for it in items}) == 70 and len({it["question"] for it in items}) == 70
    # skipped rows are counted, with their reason
    assert summary["tasks"]["math"]["skipped"] == {"answer has no canonical math form": 2}
    assert summary["tasks"]["openbook_qa"]["skipped"] == {"duplicate question": 4}
    assert summary["skipped"] == 8
    for it in items:
        assert {"id", "task", "task_id", "question", "answer", "metric"} <= set(it)


def test_build_dataset_selection_does_not_depend_on_other_tasks():
    both, _ = build_dataset(need(QUERIES), per_task=4, seed=0, tasks=["mbpp", "gsm8k"])
    one, _ = build_dataset(need(QUERIES), per_task=4, seed=0, tasks=["mbpp"])
    assert [it for it in both if it["task"] == "mbpp"] == one


def test_per_task_values():
    assert parse_per_task("20") == 20 and parse_per_task(3) == 3 and parse_per_task("all") is None
    for bad in ("0", "-2", "lots", "2.5", ""):
        with pytest.raises(ConfigError, match="--per-task"):
            parse_per_task(bad)


def test_the_default_sets_are_reproducible():
    items, summary = build_dataset(need(QUERIES), per_task=20, seed=0)
    assert summary["items"] == 280
    assert dumps_items(items) == (DATASETS / "local-calibration.jsonl").read_text(encoding="utf-8")
    gsm, _ = build_dataset(need(GSM8K), per_task=100, seed=0)
    assert dumps_items(gsm) == (DATASETS / "gsm8k-100.jsonl").read_text(encoding="utf-8")
    # every item loads as a calibration item, one per line whatever the line splitter
    assert len(load_dataset(DATASETS / "local-calibration.jsonl")) == 280
    assert len(load_dataset(DATASETS / "gsm8k-100.jsonl")) == 100


def test_licences_travel_with_the_copies():
    assert (DATASETS / "LICENSE-routing-data").read_bytes() == need(routing_data_dir() / "LICENSE").read_bytes()
    assert (DATASETS / "LICENSE-gsm8k").read_bytes() == need(SHARED / "gsm8k" / "LICENSE").read_bytes()


# -- `junto route dataset` end to end -------------------------------------------------------------------------------

def test_cli_dataset_end_to_end(tmp_path):
    out = tmp_path / "cal.jsonl"
    r = run_cli("route", "dataset", "--from", str(need(QUERIES)), "--per-task", "3", "--seed", "1",
                "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["items"] == 42 and summary["per_task"] == 3 and summary["out"] == str(out)
    assert set(summary["tasks"]) == set(ROUTING_TASKS)
    items = load_dataset(out)
    assert len(items) == 42 and {i.metric for i in items} == {"mc", "numeric", "math", "f1", "code", "coverage"}
    ref, _ = build_dataset(QUERIES, per_task=3, seed=1)
    assert out.read_text(encoding="utf-8") == dumps_items(ref)
    # the table form, a task filter and the HumanEval file
    r = run_cli("route", "dataset", "--from", str(need(HUMANEVAL)), "--per-task", "all", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "164 items" in r.stdout and len(load_dataset(out)) == 164


def test_cli_dataset_bad_input(tmp_path):
    out = tmp_path / "cal.jsonl"
    r = run_cli("route", "dataset", "--from", str(tmp_path / "missing.jsonl"), "--out", str(out))
    assert r.returncode == 2 and "source file not found" in r.stderr and "Traceback" not in r.stderr
    for bad in ("0", "lots"):
        r = run_cli("route", "dataset", "--from", str(need(QUERIES)), "--per-task", bad, "--out", str(out))
        assert r.returncode == 2 and "--per-task" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("route", "dataset", "--from", str(QUERIES), "--tasks", "mbpp,chess", "--out", str(out))
    assert r.returncode == 2 and "no task named chess" in r.stderr
    other = tmp_path / "other.jsonl"
    other.write_text('{"foo": 1}\n')
    r = run_cli("route", "dataset", "--from", str(other), "--out", str(out))
    assert r.returncode == 2 and "no rows of the routing" in r.stderr
    notjson = tmp_path / "bad.jsonl"
    notjson.write_text("{not json\n")
    r = run_cli("route", "dataset", "--from", str(notjson), "--out", str(out))
    assert r.returncode == 2 and "bad.jsonl:1: not valid JSON" in r.stderr
    assert not out.exists()


def test_gzip_reading(tmp_path):
    p = tmp_path / "x.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"question": "1+1?", "answer": "so\n#### 2"}) + "\n")
    items, summary = build_dataset(p, per_task=None)
    assert items[0]["answer"] == "2" and summary["tasks"]["gsm8k"]["selected"] == 1
