"""Real tasks for calibration: the ``code`` and ``coverage`` metrics, and calibration sets made from shared data.

**Metrics** beyond :data:`junto.answers.METRICS` (which grades ``mc``, ``numeric``, ``math``, ``exact``, ``f1``):

* ``code``: the item's ``answer`` is a test program. The model's code — the last fenced ````` ```python `````
  block of its reply (an untagged block when there is none, the rest of the reply after an unclosed fence, else the
  whole reply) — is run with the tests in :func:`junto.sandbox.run_python` (time, memory, file-size and process
  limits, no network, a private directory). MBPP-style tests are ``assert`` lines; HumanEval-style tests define
  ``check(candidate)`` and end with ``check(<entry point>)``, and then the item's question (the HumanEval prompt:
  imports, helpers, signature and docstring) is put in front of the model's code, so a reply with only the
  function's body, or without the prompt's imports and helpers, runs as HumanEval intends. Score 1 when the program
  exits 0 *and* prints a random token written after the tests (so code that calls ``sys.exit(0)`` or
  ``os._exit(0)`` before the tests can run does not pass), else 0.
* ``coverage`` (CommonGen): the fraction of the item's concept words found in the reply. Words are matched after
  a cheap lemmatisation (:func:`stem`): lower case, letters only, a small table of irregular forms
  (``sold`` → ``sell``, ``children`` → ``child``, ...), then one suffix stripped (``-ies``/``-ied`` → ``y``,
  ``-ing``, ``-ed``, ``-es`` after s/x/z/ch/sh, else ``-s`` but not ``-ss``/``-us``/``-is``), a doubled final
  consonant undone after ``-ing``/``-ed``, and a final ``e`` dropped, so ``drive``, ``drives``, ``driving`` and
  ``drove`` all match ``drive``. No part-of-speech tagging: it can match a noun for a verb (``left`` for
  ``leave``) and misses rarer irregular forms and derivations (``seller`` for ``sell``).

**Calibration sets** (:func:`build_dataset`, ``junto route dataset``): the shared routing data's query file
(14 tasks, rows ``{task_name, query, ground_truth, metric, choices, task_id}``), the GSM8K training file
(``{question, answer}``) or HumanEval's file (``{task_id, prompt, entry_point, test}``; ``.jsonl`` or ``.jsonl.gz``)
become calibration items ``{id, question, answer, metric, choices?, task, task_id}``:

=====================  =================  ==========================================================================
source metric          item metric        reference
=====================  =================  ==========================================================================
em_mc                  ``mc``             the option's letter; ``choices`` parsed from the Python-literal string (a
                                          list, or a dict of ``text`` and ``label``/``labels``; labels such as
                                          ``1``–``4`` become letters by position)
GSM8K                  ``numeric``        the number after ``####`` (commas removed)
MATH                   ``math``           the last ``\\boxed{}`` of the solution (agentverse-mgsm: the plain number)
f1_score               ``f1``             the answer text
code_eval              ``code``           MBPP: the asserts (shown in the question, as in MBPP's own prompt);
                                          HumanEval: ``check`` + ``check(<entry point>)``, the entry point being the
                                          prompt's last top-level function
commongen_coverage     ``coverage``       the list of concept words
=====================  =================  ==========================================================================

Every reference is parsed and checked (a number parses, a math answer has a canonical form, a letter names one of
the options, a test program is valid Python, ...); a row that fails is skipped and counted by reason in the
summary, never written half-right. A question seen before (the routing file repeats a few across tasks) is
skipped as a duplicate. Sampling is stratified: ``per_task`` items of each task, drawn with a seeded generator
per task, and written round-robin across tasks, so that any prefix of the file is stratified too (a calibration
run cut short still covers every task).
"""

from __future__ import annotations

import ast
import json
import random
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from junto.answers import CHOICE_LETTERS, METRICS, canonical, grade, last_boxed, normalize_text, parse_number
from junto.errors import ConfigError

#: the metrics graded here, on top of the answer module's
EXTRA_METRICS: tuple[str, ...] = ("code", "coverage")
#: the metrics a calibration item may name: the answer module's, and the two graded here
CALIBRATION_METRICS: tuple[str, ...] = (*METRICS, *EXTRA_METRICS)

#: the 14 tasks of the shared routing data, by the metric each converts to
ROUTING_TASKS: dict[str, str] = {
    "math": "math", "agentverse-mgsm": "math", "gsm8k": "numeric", "natural_qa": "f1", "trivia_qa": "f1",
    "mmlu": "mc", "commonsense_qa": "mc", "openbook_qa": "mc", "arc_challenge": "mc", "gpqa": "mc",
    "agentverse-logicgrid": "mc", "mbpp": "code", "human_eval": "code", "commongen": "coverage",
}
SOURCE_METRICS = {"em_mc": "mc", "GSM8K": "numeric", "MATH": "math", "f1_score": "f1", "code_eval": "code",
                  "commongen_coverage": "coverage"}

CODE_TIMEOUT_S = 10.0
CODE_MEMORY_MB = 512
#: a literal longer than this is not evaluated (choices and test lists are a few KB at most)
MAX_LITERAL_CHARS = 200_000


class SkipItem(ValueError):
    """A source row whose reference cannot be parsed or checked; the message is the reason."""


# -- code --------------------------------------------------------------------------------------------------------

_PY_TAGS = frozenset({"python", "py", "python3", "py3"})


def extract_code(text: str) -> str:
    """The code of a reply: its last ```python block, else its last untagged block, else what follows an unclosed
    fence (a reply cut short), else the whole reply. Linear in the reply's length."""
    text = text or ""
    fences, i = [], text.find("```")
    while i != -1:
        fences.append(i)
        i = text.find("```", i + 3)
    blocks: list[tuple[str, str]] = []  # (language tag, code)
    k = 0
    while k < len(fences):
        start = fences[k]
        line_end = text.find("\n", start)
        if line_end == -1:
            break
        tag = text[start + 3:line_end].strip().lower()
        # the next fence after the opening line closes the block
        while k + 1 < len(fences) and fences[k + 1] < line_end:
            k += 1
        if k + 1 < len(fences):
            blocks.append((tag, text[line_end + 1:fences[k + 1]]))
            k += 2
        else:
            blocks.append((tag, text[line_end + 1:]))  # unclosed: the reply was cut short
            k += 1
    for wanted in (lambda t: t in _PY_TAGS, lambda t: t == ""):
        chosen = [code for tag, code in blocks if wanted(tag)]
        if chosen:
            return chosen[-1].strip("\n")
    return text.strip("\n")


_CHECK_CALL = re.compile(r"^check\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.M)


def entry_point_of(tests: str) -> str | None:
    """The function a HumanEval-style test program checks (its last ``check(name)`` line), or None (MBPP style)."""
    found = _CHECK_CALL.findall(tests or "")
    return found[-1] if found else None


def assemble_program(code: str, tests: str, prompt: str | None = None) -> str:
    """The program to run: the model's code, then the tests. HumanEval-style tests (``check(name)``) get the
    prompt first; a reply that does not define ``name`` itself is taken as the function's body (indented if it
    is not)."""
    entry = entry_point_of(tests)
    if entry is None or not prompt:
        return f"{code}\n\n\n{tests}\n"
    if re.search(rf"^def\s+{re.escape(entry)}\s*\(", code, re.M):
        return f"{prompt.rstrip()}\n\n\n{code}\n\n\n{tests}\n"
    body = code
    if not any(line[:1] in (" ", "\t") for line in code.splitlines() if line.strip()):
        body = "\n".join("    " + line if line.strip() else line for line in code.splitlines())
    return f"{prompt.rstrip()}\n{body}\n\n\n{tests}\n"


def grade_code(prediction: str, tests: str, *, prompt: str | None = None, timeout_s: float = CODE_TIMEOUT_S,
               memory_mb: int = CODE_MEMORY_MB) -> float:
    """1.0 when the reply's code passes ``tests`` in the sandbox (see the module docstring), else 0.0."""
    from junto.sandbox import run_python

    code = extract_code(prediction)
    if not code.strip():
        return 0.0
    token = "junto-tests-passed-" + secrets.token_hex(8)
    program = assemble_program(code, tests, prompt) + f"\n__import__('sys').stdout.write('\\n{token}\\n')\n"
    result = run_python(program, timeout_s=timeout_s, memory_mb=memory_mb)
    return float(result.ok and token in result.stdout)


def check_tests(tests: str) -> None:
    """Raise :class:`SkipItem` unless ``tests`` is a valid test program (asserts, or ``check`` and its call)."""
    if not isinstance(tests, str) or not tests.strip():
        raise SkipItem("empty test program")
    try:
        tree = ast.parse(tests)
    except (SyntaxError, ValueError) as exc:
        raise SkipItem(f"test program is not valid Python ({exc.__class__.__name__})") from None
    entry = entry_point_of(tests)
    if entry is not None:
        if not any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body):
            raise SkipItem("check(...) is called but never defined")
    elif not any(isinstance(n, ast.Assert) for n in tree.body):
        raise SkipItem("test program has no assert")


# -- coverage ----------------------------------------------------------------------------------------------------

IRREGULAR: dict[str, str] = {
    # verbs
    "sold": "sell", "bought": "buy", "ran": "run", "ate": "eat", "eaten": "eat", "drove": "drive",
    "driven": "drive", "threw": "throw", "thrown": "throw", "sat": "sit", "stood": "stand", "caught": "catch",
    "taught": "teach", "wrote": "write", "written": "write", "rode": "ride", "ridden": "ride", "took": "take",
    "taken": "take", "gave": "give", "given": "give", "went": "go", "gone": "go", "saw": "see", "seen": "see",
    "made": "make", "came": "come", "held": "hold", "fell": "fall", "fallen": "fall", "flew": "fly",
    "flown": "fly", "swam": "swim", "swum": "swim", "sang": "sing", "sung": "sing", "began": "begin",
    "begun": "begin", "grew": "grow", "grown": "grow", "drew": "draw", "drawn": "draw", "blew": "blow",
    "blown": "blow", "wore": "wear", "worn": "wear", "tore": "tear", "torn": "tear", "hung": "hang",
    "fed": "feed", "led": "lead", "left": "leave", "shot": "shoot", "spun": "spin", "dug": "dig",
    "stuck": "stick", "struck": "strike", "swung": "swing", "built": "build", "sent": "send", "spent": "spend",
    "bent": "bend", "lit": "light", "met": "meet", "paid": "pay", "said": "say", "told": "tell",
    "thought": "think", "brought": "bring", "found": "find", "kept": "keep", "slept": "sleep", "swept": "sweep",
    "knelt": "kneel", "felt": "feel", "froze": "freeze", "frozen": "freeze", "broke": "break", "broken": "break",
    "chose": "choose", "chosen": "choose", "spoke": "speak", "spoken": "speak", "woke": "wake", "woken": "wake",
    "won": "win", "hid": "hide", "hidden": "hide", "bitten": "bite",
    "shook": "shake", "shaken": "shake", "stole": "steal", "stolen": "steal", "sank": "sink", "sunk": "sink",
    "rang": "ring", "rung": "ring", "dove": "dive", "wove": "weave", "woven": "weave", "slid": "slide",
    "fought": "fight", "sought": "seek", "understood": "understand", "forgot": "forget",
    "forgotten": "forget", "lent": "lend", "fled": "flee", "bled": "bleed", "knew": "know", "known": "know",
    "is": "be", "was": "be", "were": "be", "been": "be", "are": "be", "has": "have", "had": "have",
    # nouns
    "men": "man", "women": "woman", "children": "child", "feet": "foot", "teeth": "tooth", "mice": "mouse",
    "geese": "goose", "people": "person", "knives": "knife", "leaves": "leaf", "wives": "wife", "lives": "life",
    "shelves": "shelf", "wolves": "wolf", "halves": "half", "loaves": "loaf", "calves": "calf", "oxen": "ox",
}
_WORD = re.compile(r"[a-z]+")
_NO_UNDOUBLE = frozenset("aeioulsz")


def stem(word: str) -> str:
    """A cheap lemma: see the module docstring. ``stem("driving") == stem("drives") == stem("drove")``."""
    w = IRREGULAR.get(word.lower(), word.lower())
    if len(w) <= 3:
        return w
    stripped = False
    if w.endswith(("ies", "ied")) and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("ing") and len(w) >= 6:
        w, stripped = w[:-3], True
    elif w.endswith("ed") and len(w) >= 5:
        w, stripped = w[:-2], True
    elif w.endswith("es") and w[:-2].endswith(("s", "x", "z", "ch", "sh")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if stripped and len(w) > 3 and w[-1] == w[-2] and w[-1] not in _NO_UNDOUBLE:
        w = w[:-1]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w


def concepts_of(reference: str | Sequence[str]) -> list[str]:
    """The concept words of a coverage reference: a list, or one comma-separated string."""
    items = reference.split(",") if isinstance(reference, str) else [str(x) for x in reference]
    return [c.strip() for c in items if c.strip()]


def concept_coverage(prediction: str, reference: str | Sequence[str]) -> float:
    """The fraction of the concepts present in ``prediction`` (a multi-word concept needs all its words)."""
    concepts = concepts_of(reference)
    if not concepts:
        return 0.0
    present = {stem(w) for w in _WORD.findall((prediction or "").lower())}
    hit = 0
    for c in concepts:
        words = _WORD.findall(c.lower())
        if words and all(stem(w) in present for w in words):
            hit += 1
    return hit / len(concepts)


# -- grading and prompts (used by junto.routers.calibrate) --------------------------------------------------------

def grade_item(metric: str, prediction: str, reference: str | Sequence[str], *, question: str = "",
               n_choices: int = 5) -> float:
    """Score a reply under any calibration metric, in [0, 1]."""
    if metric == "code":
        tests = reference if isinstance(reference, str) else "\n".join(reference)
        return grade_code(prediction, tests, prompt=question if entry_point_of(tests) else None)
    if metric == "coverage":
        return concept_coverage(prediction, reference)
    return grade(metric, prediction, reference, n_choices=n_choices)


def check_reference(metric: str, answer: Any) -> str | None:
    """Why ``answer`` is not a usable reference for ``metric`` (code and coverage only), or None."""
    if metric == "code":
        if not isinstance(answer, str):
            return "metric 'code' needs 'answer' to be the test program (a string)"
        try:
            check_tests(answer)
        except SkipItem as exc:
            return f"metric 'code': {exc}"
    elif metric == "coverage":
        if not concepts_of(answer if isinstance(answer, (str, list)) else ""):
            return "metric 'coverage' needs 'answer' to list the concept words"
    return None


def is_function_prompt(question: str) -> bool:
    return re.search(r"^\s*def\s+[A-Za-z_]\w*\s*\(", question, re.M) is not None


def code_prompt(question: str) -> str:
    if is_function_prompt(question):  # HumanEval: signature and docstring
        return ("Complete the following Python function. Reply with the whole function, signature included, "
                f"in one ```python code block.\n\n```python\n{question.rstrip()}\n```")
    return (f"{question.strip()}\n\nWrite a Python function that does this, in one ```python code block. "
            "Use only the standard library.")


def coverage_prompt(question: str) -> str:
    return ("Write a short, coherent paragraph about an everyday scene that uses every one of these words: "
            f"{question.strip()}.")


# -- converting shared data to calibration items --------------------------------------------------------------------

def _literal(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    if len(raw) > MAX_LITERAL_CHARS:
        raise SkipItem("literal too long")
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise SkipItem("not a Python literal") from None


def parse_choices(raw: Any, truth: Any) -> tuple[list[str], str]:
    """Options and the correct option's letter, from the routing data's Python-literal ``choices``: a list
    (the truth is a letter) or a dict of ``text`` and ``label``/``labels`` (the truth is one of the labels)."""
    v = _literal(raw)
    labels = None
    if isinstance(v, dict):
        texts = v.get("text")
        labels = v.get("label", v.get("labels"))
        if not isinstance(labels, list):
            raise SkipItem("choices dict has no label list")
    else:
        texts = v
    if not isinstance(texts, list) or not 2 <= len(texts) <= len(CHOICE_LETTERS):
        raise SkipItem("choices are not a list of 2 to 10 options")
    texts = [str(t).strip() for t in texts]
    if any(not t for t in texts):
        raise SkipItem("an empty option")
    truth = str(truth).strip()
    if labels is not None:
        labels = [str(x).strip() for x in labels]
        if len(labels) != len(texts) or len(set(labels)) != len(labels):
            raise SkipItem("labels do not match the options")
        if truth not in labels:
            raise SkipItem(f"answer {truth!r} is not one of the labels")
        idx = labels.index(truth)
    else:
        if len(truth) != 1 or truth not in CHOICE_LETTERS[:len(texts)]:
            raise SkipItem(f"answer {truth!r} is not the letter of an option")
        idx = CHOICE_LETTERS.index(truth)
    return texts, CHOICE_LETTERS[idx]


def gsm8k_answer(solution: str) -> str:
    """The number after ``####`` of a GSM8K solution, commas removed; checked to parse as a number."""
    _, sep, tail = str(solution).rpartition("####")
    if not sep:
        raise SkipItem("no '####' answer line")
    value = tail.strip().replace(",", "")
    if not value or parse_number(value) is None:
        raise SkipItem(f"answer {value!r} is not a number")
    return value


def math_answer(solution: str, *, plain: bool = False) -> str:
    """The last ``\\boxed{}`` of a MATH solution (``plain``: the text itself), checked to have a canonical form."""
    ans = str(solution).strip() if plain else last_boxed(str(solution))
    if not ans:
        raise SkipItem("no \\boxed{} answer")
    if canonical(ans, "math") is None:
        raise SkipItem("answer has no canonical math form")
    return ans


def mbpp_tests(ground_truth: Any) -> list[str]:
    asserts = _literal(ground_truth)
    if not isinstance(asserts, list) or not asserts or not all(isinstance(a, str) for a in asserts):
        raise SkipItem("tests are not a list of strings")
    asserts = [a.strip() for a in asserts]
    if not all(a.startswith("assert") for a in asserts):
        raise SkipItem("a test is not an assert")
    check_tests("\n".join(asserts))
    return asserts


def humaneval_entry_point(prompt: str) -> str:
    """The function a HumanEval prompt asks for: its last top-level ``def``."""
    try:
        tree = ast.parse(prompt)
    except (SyntaxError, ValueError):
        raise SkipItem("prompt is not valid Python") from None
    defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not defs:
        raise SkipItem("prompt defines no function")
    return defs[-1]


def humaneval_tests(test: str, entry_point: str) -> str:
    tests = f"{str(test).strip()}\n\n\ncheck({entry_point})\n"
    check_tests(tests)
    return tests


def convert_routing_row(row: dict[str, Any]) -> dict[str, Any]:
    """One row of the routing data's query file as a calibration item (without ``id``); raises SkipItem."""
    task, query, truth = row.get("task_name"), row.get("query"), row.get("ground_truth")
    if not isinstance(query, str) or not query.strip():
        raise SkipItem("no query")
    metric = SOURCE_METRICS.get(row.get("metric"))
    if metric is None:
        raise SkipItem(f"unknown metric {row.get('metric')!r}")
    item: dict[str, Any] = {"question": query, "metric": metric}
    if metric == "mc":
        item["choices"], item["answer"] = parse_choices(row.get("choices"), truth)
    elif metric == "numeric":
        item["answer"] = gsm8k_answer(truth)
    elif metric == "math":
        item["answer"] = math_answer(truth, plain="####" not in str(truth) and "\\boxed" not in str(truth)
                                     and parse_number(str(truth).strip()) is not None)
    elif metric == "f1":
        if not isinstance(truth, str) or not normalize_text(truth):
            raise SkipItem("empty answer")
        item["answer"] = truth.strip()
    elif metric == "code":
        if task == "human_eval" or "def check(" in str(truth):
            entry = humaneval_entry_point(query)
            item["answer"] = humaneval_tests(truth, entry)
            item["entry_point"] = entry
        else:
            asserts = mbpp_tests(truth)
            item["question"] = f"{query.strip()}\nYour code should pass these tests:\n\n" + "\n".join(asserts)
            item["answer"] = "\n".join(asserts) + "\n"
    else:  # coverage
        concepts = concepts_of(truth if isinstance(truth, (str, list)) else "")
        if not concepts:
            raise SkipItem("no concept words")
        item["answer"] = concepts
    return item


def convert_gsm8k_row(row: dict[str, Any]) -> dict[str, Any]:
    q = row.get("question")
    if not isinstance(q, str) or not q.strip():
        raise SkipItem("no question")
    return {"question": q, "metric": "numeric", "answer": gsm8k_answer(row.get("answer", ""))}


def convert_humaneval_row(row: dict[str, Any]) -> dict[str, Any]:
    prompt, entry = row.get("prompt"), row.get("entry_point")
    if not isinstance(prompt, str) or not prompt.strip():
        raise SkipItem("no prompt")
    found = humaneval_entry_point(prompt)
    if entry is not None and entry != found:
        raise SkipItem(f"entry point {entry!r} is not the prompt's last function {found!r}")
    return {"question": prompt, "metric": "code", "answer": humaneval_tests(row.get("test", ""), found),
            "entry_point": found}


def row_kind(row: Any) -> str | None:
    """``routing``, ``gsm8k`` or ``humaneval``: which shared file a row comes from (None: none of them)."""
    if not isinstance(row, dict):
        return None
    if "task_name" in row and "query" in row:
        return "routing"
    if "prompt" in row and "test" in row and "task_id" in row:
        return "humaneval"
    if "question" in row and "answer" in row:
        return "gsm8k"
    return None


def read_rows(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """The JSON objects of a JSONL file (``.gz`` too) with their line numbers; ConfigError when unreadable."""
    from junto.jsonl import read_jsonl

    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"source file not found: {p}",
                          hint="e.g. --from ../shared/data/routing/queries_train.jsonl")
    return read_jsonl(p, allow_empty=True)


def parse_per_task(value: str | int) -> int | None:
    """``--per-task``: a positive integer, or ``all`` (None: every valid item)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and value.strip().lower() == "all":
        return None
    else:
        try:
            n = int(str(value).strip())
        except ValueError:
            n = 0
    if n < 1:
        raise ConfigError(f"--per-task {value!r} is not a positive number of items or 'all'",
                          hint="e.g. --per-task 20 (items per task) or --per-task all")
    return n


def build_dataset(source: str | Path, per_task: int | None = 20, seed: int = 0,
                  tasks: Iterable[str] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Calibration items from a shared data file, stratified by task; returns (items, summary).

    ``per_task`` items of every task (None: all valid ones; fewer where a task has fewer valid ones), chosen
    with ``random.Random(f"{seed}:{task}")`` among the task's valid rows, written round-robin across tasks.
    The summary counts, per task, the rows read, the valid ones, those skipped (by reason) and those selected.
    """
    path = Path(source)
    rows = read_rows(path)
    wanted = None if tasks is None else list(tasks)
    stem_ = path.name.split(".")[0]
    per: dict[str, dict[str, Any]] = {}
    valid: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    kinds = Counter()
    for n, row in rows:
        kind = row_kind(row)
        kinds[kind] += 1
        if kind == "routing":
            task = str(row["task_name"])
        elif kind == "humaneval":
            task = "human_eval"
        elif kind == "gsm8k":
            task = "gsm8k"
        else:
            task = "?"
        if wanted is not None and task not in wanted:
            continue
        stats = per.setdefault(task, {"rows": 0, "valid": 0, "skipped": Counter(), "selected": 0})
        stats["rows"] += 1
        try:
            if kind is None:
                raise SkipItem("not a row of the routing, GSM8K or HumanEval files")
            conv = {"routing": convert_routing_row, "gsm8k": convert_gsm8k_row,
                    "humaneval": convert_humaneval_row}[kind]
            item = conv(row)
        except SkipItem as exc:
            stats["skipped"][str(exc)] += 1
            continue
        if item["question"] in seen:
            stats["skipped"]["duplicate question"] += 1
            continue
        seen.add(item["question"])
        task_id = row.get("task_id") if kind != "gsm8k" else None
        ordered = {"id": f"{task}/{stem_}:{n}", "task": task, "task_id": task_id, **item}
        valid.setdefault(task, []).append(ordered)
        stats["valid"] += 1
    if not rows or kinds[None] == len(rows):
        raise ConfigError(f"{path}: no rows of the routing, GSM8K or HumanEval files",
                          hint="rows {task_name, query, ground_truth, metric, choices, task_id}, "
                               "{question, answer} or {task_id, prompt, entry_point, test}")
    if wanted is not None:
        unknown = sorted(set(wanted) - set(per))
        if unknown:
            raise ConfigError(f"no task named {', '.join(unknown)} in {path}",
                              hint=f"tasks there: {', '.join(sorted({t for t in per} | _tasks_in(rows)))}")
    chosen: dict[str, list[dict[str, Any]]] = {}
    for task in sorted(valid):
        pool = valid[task]
        k = len(pool) if per_task is None else min(per_task, len(pool))
        picks = random.Random(f"{seed}:{task}").sample(range(len(pool)), k)
        chosen[task] = [pool[i] for i in picks]
        per[task]["selected"] = k
    items: list[dict[str, Any]] = []
    for i in range(max((len(v) for v in chosen.values()), default=0)):
        for task in sorted(chosen):
            if i < len(chosen[task]):
                items.append(chosen[task][i])
    summary = {
        "source": str(path), "per_task": "all" if per_task is None else per_task, "seed": seed, "items": len(items),
        "skipped": sum(sum(s["skipped"].values()) for s in per.values()),
        "tasks": {t: {**s, "skipped": dict(sorted(s["skipped"].items()))} for t, s in sorted(per.items())},
    }
    return items, summary


def _tasks_in(rows: list[tuple[int, dict[str, Any]]]) -> set[str]:
    out = set()
    for _, row in rows:
        kind = row_kind(row)
        out.add(str(row["task_name"]) if kind == "routing" else {"humaneval": "human_eval", "gsm8k": "gsm8k"}.get(
            kind or "", "?"))
    return out


_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def dumps_items(items: list[dict[str, Any]]) -> str:
    """JSONL, UTF-8, with the characters ``str.splitlines`` would break a line at escaped (JSON escapes the
    other ones already), so that every reader sees one item per line."""
    text = "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items)
    for ch, esc in _LINE_BREAKS.items():
        text = text.replace(ch, esc)
    return text


__all__ = [
    "CALIBRATION_METRICS", "EXTRA_METRICS", "ROUTING_TASKS", "SkipItem", "extract_code", "assemble_program",
    "grade_code", "entry_point_of", "check_tests", "stem", "concepts_of", "concept_coverage", "grade_item", "check_reference",
    "code_prompt", "coverage_prompt", "parse_choices", "gsm8k_answer", "math_answer", "mbpp_tests",
    "humaneval_entry_point", "humaneval_tests", "convert_routing_row", "convert_gsm8k_row", "convert_humaneval_row",
    "read_rows", "parse_per_task", "build_dataset", "dumps_items",
]
