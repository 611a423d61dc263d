"""Grading a model's answer against a reference: pure functions, no I/O.

Metrics (the ``metric`` field of a calibration dataset item):

* ``mc``: multiple choice; the answer's option letter (A, B, ...) against the reference letter.
* ``numeric``: the last number in the answer against the reference number (relative 1e-6).
* ``math``: mathematical equivalence via math-verify when installed (``\\boxed{}`` answers, LaTeX,
  fractions); otherwise numeric, then normalized-string comparison of the final answer.
* ``exact``: SQuAD-style normalized exact match (case, punctuation, articles, spaces).
* ``f1``: SQuAD-style token F1.

A reference may be a list of accepted answers; the best match counts. Scores are in [0, 1].
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

METRICS: tuple[str, ...] = ("mc", "numeric", "math", "exact", "f1")

_LETTERS = "ABCDEFGHIJ"


def normalize_text(s: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse spaces (SQuAD's normalization)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_text(prediction) == normalize_text(reference))


def token_f1(prediction: str, reference: str) -> float:
    p, r = normalize_text(prediction).split(), normalize_text(reference).split()
    if not p or not r:
        return float(p == r)
    common = Counter(p) & Counter(r)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(r)
    return 2 * precision * recall / (precision + recall)


def extract_choice(text: str, n_choices: int = 5) -> str | None:
    """The option letter an answer commits to, or None.

    Prefers explicit statements ("answer is (B)", "Answer: C"), then a letter in parentheses or on
    its own at the start, then the last standalone capital letter among the options.
    """
    letters = _LETTERS[:max(1, min(n_choices, len(_LETTERS)))]
    cls = f"[{letters}]"
    patterns = [
        rf"answer\s*(?:is|:)?\s*(?:option\s*)?[\(\[]?({cls})[\)\]]?(?![A-Za-z])",
        rf"\\boxed\{{\s*({cls})\s*\}}",
        rf"^\s*[\(\[]?({cls})[\)\]\.:](?:\s|$)",
        rf"^\s*({cls})\s*$",
        rf"[\(\[]({cls})[\)\]]",
    ]
    for pat in patterns:
        m = re.search(pat, text, flags=re.IGNORECASE | re.MULTILINE) if pat.startswith("answer") else \
            re.search(pat, text, flags=re.MULTILINE)
        if m:
            return m.group(1).upper()
    found = re.findall(rf"(?<![A-Za-z]){cls}(?![A-Za-z])", text)
    return found[-1] if found else None


_NUM = re.compile(r"-?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?")


def extract_number(text: str) -> float | None:
    """The last number in ``text`` (commas as thousands separators, $ and % ignored; a/b as a fraction)."""
    t = text.replace("$", "").replace("%", "")
    boxed = _boxed(t)
    if boxed is not None:
        t = boxed
    nums = _NUM.findall(t)
    if not nums:
        return None
    last = nums[-1].replace(",", "").replace(" ", "")
    try:
        if "/" in last:
            a, b = last.split("/")
            return float(a) / float(b) if float(b) != 0 else None
        return float(last)
    except ValueError:
        return None


def numbers_equal(a: float, b: float, rel: float = 1e-6, abs_: float = 1e-9) -> bool:
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def _boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}``, with nested braces."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth, out = start + len("\\boxed{"), 1, []
    while i < len(text):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return "".join(out)
        out.append(ch)
        i += 1
    return None


def _final_answer(text: str) -> str:
    boxed = _boxed(text)
    if boxed is not None:
        return boxed
    m = re.search(r"answer\s*(?:is|:)\s*(.+)", text, flags=re.IGNORECASE)
    return (m.group(1) if m else text.strip().splitlines()[-1] if text.strip() else "").strip().rstrip(".")


def math_equal(prediction: str, reference: str) -> float:
    try:
        from math_verify import parse, verify
    except ImportError:
        parse = verify = None
    if parse is not None:
        try:
            gold = parse(reference if "$" in reference or "\\" in reference else f"${reference}$")
            pred = parse(prediction)
            if gold and pred and verify(gold, pred):
                return 1.0
        except Exception:  # math-verify raises on odd LaTeX; fall back to the plain checks below
            pass
    a, b = extract_number(_final_answer(prediction)), extract_number(reference)
    if a is not None and b is not None:
        return float(numbers_equal(a, b))
    return float(normalize_text(_final_answer(prediction)) == normalize_text(reference))


def grade(metric: str, prediction: str, reference: str | Sequence[str], *, n_choices: int = 5) -> float:
    """Score ``prediction`` against ``reference`` (or the best of several) under ``metric``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    refs = [reference] if isinstance(reference, str) else [str(r) for r in reference]
    if not refs:
        return 0.0
    best = 0.0
    for ref in refs:
        if metric == "mc":
            got = extract_choice(prediction, n_choices)
            s = float(got is not None and got == ref.strip().strip("()").upper())
        elif metric == "numeric":
            a, b = extract_number(prediction), extract_number(ref)
            s = float(a is not None and b is not None and numbers_equal(a, b))
        elif metric == "math":
            s = math_equal(prediction, ref)
        elif metric == "exact":
            s = exact_match(_final_answer(prediction), ref) or exact_match(prediction, ref)
        else:
            s = max(token_f1(prediction, ref), token_f1(_final_answer(prediction), ref))
        best = max(best, float(s))
    return best
