"""Answer extraction and equivalence: pure functions over strings, no I/O.

Voting strategies need two things from a sampled completion: *what it answered* (extraction) and
*which other answers mean the same* (equivalence). Both are defined per answer kind:

* ``math``: the last ``\\boxed{...}`` (braces matched, so ``\\boxed{\\frac{1}{2}}`` survives),
  else the text after "the answer is" / "Answer:", else the last number in the text.
* ``number``: the last number, reading thousands separators (``1,234``), decimals, fractions
  (``3/4``), signs and trailing units (``12 cm`` → 12, ``50%`` → 50).
* ``choice``: a multiple-choice letter A–J ("the answer is (C)", "Answer: C", a lone "C." ...).
* ``text``: the whole reply, normalized (case, punctuation, articles, whitespace).
* ``auto``: ``math`` when the reply has a ``\\boxed{}``, else ``number`` when it has a number, else
  ``text`` when the reply is short (≤ 8 words; a rambling reply is no answer).

:func:`canonical` maps an extracted answer to a *vote key*: numbers become exact fractions
(``\\frac12``, ``1/2``, ``0.5`` and ``0.50`` all become ``"1/2"``; ``1,000`` and ``1000.0`` become
``"1000"``), so equal values vote together without any floating-point fuzz. Math answers that are not
plain numbers are parsed with ``math-verify`` (sympy underneath) and merged into one class when
``math_verify.verify`` says they are equal (:func:`group_keys`). ``None`` means "no valid answer":
such samples are counted as spent but never get a vote.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Literal

AnswerKind = Literal["auto", "math", "number", "choice", "text"]
KINDS: tuple[str, ...] = ("auto", "math", "number", "choice", "text")

CHOICE_LETTERS = "ABCDEFGHIJ"
#: in ``auto`` mode, a reply with no number and no box is an answer only up to this many words
AUTO_TEXT_MAX_WORDS = 8

# -- extraction --------------------------------------------------------------------------------

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_NUMBER = re.compile(
    r"(?<![\w.])[-−+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?(?![\d])"
    r"|(?<![\w.])[-−+]?\.\d+"
)
_ANSWER_IS = re.compile(
    r"(?:final\s+answer|answer|result)\s*(?:is|=|:)\s*[:=]?\s*(.+)", re.IGNORECASE)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}``, braces matched; ``\\boxed 5`` too."""
    found: str | None = None
    for m in _BOXED.finditer(text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if depth == 0:
                found = text[i + 1:j]
        elif i < len(text):
            # "\boxed 5": one token up to whitespace or '$'
            tok = re.match(r"[^\s$]+", text[i:])
            if tok:
                found = tok.group(0)
    if found is None:
        return None
    found = found.strip()
    return found or None


def _answer_phrase(text: str) -> str | None:
    """The text after the last "answer is" / "Answer:", up to the end of its sentence or line."""
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    tail = matches[-1].group(1).strip()
    tail = tail.split("\n", 1)[0]
    # end of sentence: a period followed by a space/end, not a decimal point
    tail = re.split(r"(?<!\d)\.(?:\s|$)|\.\s", tail, maxsplit=1)[0]
    tail = tail.strip().strip("$ *`").strip()
    tail = re.sub(r"\.$", "", tail).strip()
    return tail or None


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (separators, decimals and ``a/b`` fractions kept)."""
    found = None
    for m in _NUMBER.finditer(text):
        found = m.group(0)
    return found.replace(" ", "") if found else None


def extract_math(text: str) -> str | None:
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    phrase = _answer_phrase(text)
    if phrase is not None:
        if "=" in phrase:  # "the answer is 2 + 2 = 4": the right-hand side
            phrase = phrase.rsplit("=", 1)[1].strip()
        if "\\" in phrase:
            return phrase  # LaTeX stays LaTeX
        if parse_number(phrase) is not None:
            return last_number(phrase) or phrase  # "42 apples" → 42
        words = re.sub(r"\b(?:sqrt|pi)\b", "", phrase)
        if len(phrase) <= 40 and _MATHY.search(phrase) and not re.search(r"[A-Za-z]{3,}", words):
            return phrase  # "x^2 + 1"
        num = last_number(phrase)
        if num is not None:
            return num
        # "the answer is just a number": words, not an answer; read the last number instead
    return last_number(text)


def extract_number(text: str) -> str | None:
    boxed = last_boxed(text)
    if boxed is not None and parse_number(boxed) is not None:
        return boxed
    phrase = _answer_phrase(text)
    if phrase is not None:
        num = last_number(phrase)
        if num is not None:
            return num
    return last_number(text)


_CHOICE_PATTERNS = (
    re.compile(r"answer\s*(?:is|:)?\s*(?:option\s*)?[:\s]*\(?\s*([A-J])\s*\)?(?![A-Za-z])", re.IGNORECASE),
    re.compile(r"\(([A-J])\)"),
    re.compile(r"(?:^|\s)([A-J])[.)](?:\s|$)"),
    re.compile(r"(?:^|\s)([A-J])\s*$"),
)


def extract_choice(text: str) -> str | None:
    """A multiple-choice letter A–J; the first pattern that matches wins, its last occurrence."""
    boxed = last_boxed(text)
    if boxed is not None:
        m = re.fullmatch(r"\(?\s*(?:\\text\{)?([A-Ja-j])\}?\s*\)?\.?", boxed.strip())
        if m:
            return m.group(1).upper()
    for pat in _CHOICE_PATTERNS:
        hits = pat.findall(text)
        if hits:
            letter = hits[-1].upper()
            if letter in CHOICE_LETTERS:
                return letter
    return None


def extract(text: str | None, kind: AnswerKind = "auto") -> str | None:
    """The answer a completion gives, as written (see :func:`canonical` for the vote key)."""
    if not text or not text.strip():
        return None
    if kind == "math":
        return extract_math(text)
    if kind == "number":
        return extract_number(text)
    if kind == "choice":
        return extract_choice(text)
    if kind == "text":
        return normalize_text(text) or None
    if kind == "auto":
        if last_boxed(text) is not None:
            return extract_math(text)
        num = extract_number(text)
        if num is not None:
            return num
        # free text counts as an answer only when it is short: a rambling reply is not one
        norm = normalize_text(text)
        return norm if norm and len(norm.split()) <= AUTO_TEXT_MAX_WORDS else None
    raise ValueError(f"unknown answer kind {kind!r}; one of {', '.join(KINDS)}")


# -- normalization -----------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_text(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD-style normalization)."""
    t = text.lower().translate(_PUNCT)
    t = _ARTICLES.sub(" ", t)
    return " ".join(t.split())


_UNIT_WORDS = re.compile(r"\s*(?:[a-zA-Z]+\.?|°|%|€|£|\$)(?:\s*[a-zA-Z]+\.?)*\s*$")
_FRAC = re.compile(r"^\\[dt]?frac\s*(?:\{([^{}]+)\}|(\d))\s*(?:\{([^{}]+)\}|(\d))$")


def _strip_latex(s: str) -> str:
    s = s.strip().strip("$").strip()
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\(?:mathrm|textbf|mathbf)\{([^{}]*)\}", r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "").replace("\\ ", " ")
    s = s.replace("\\%", "%").replace("\\$", "$").replace("^\\circ", "").replace("^{\\circ}", "")
    s = s.replace("−", "-")
    return s.strip()


def parse_number(s: str) -> Fraction | None:
    """An exact value for a written number: ``1,234.5``, ``-3``, ``3/4``, ``\\frac{3}{4}``, ``\\frac34``,
    ``12 cm``, ``$5``, ``50%`` (→ 50), ``x = 7``; ``None`` when it is not one number."""
    s = _strip_latex(s)
    s = re.sub(r"^[A-Za-z]\s*=\s*", "", s)  # "x = 7"
    s = s.lstrip("$€£").strip()
    s = _UNIT_WORDS.sub("", s).strip() if re.search(r"\d", s) else s
    s = s.rstrip(".").strip()
    m = _FRAC.match(s)
    if m:
        num, den = m.group(1) or m.group(2), m.group(3) or m.group(4)
        a, b = parse_number(num), parse_number(den)
        if a is None or b is None or b == 0:
            return None
        return a / b
    neg = s.startswith("-")
    if neg or s.startswith("+"):
        s = s[1:].strip()
        m = _FRAC.match(s)
        if m:
            v = parse_number(s)
            return None if v is None else (-v if neg else v)
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    if "/" in s:
        a_s, _, b_s = s.partition("/")
        if not re.fullmatch(r"\d+(?:\.\d+)?", a_s.strip()) or not re.fullmatch(r"\d+(?:\.\d+)?", b_s.strip()):
            return None
        a, b = Fraction(a_s.strip()), Fraction(b_s.strip())
        if b == 0:
            return None
        v = a / b
    elif re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", s):
        v = Fraction(s)
    else:
        return None
    return -v if neg else v


def fraction_key(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


# -- equivalence -------------------------------------------------------------------------------

class _NoTimeoutNotice(logging.Filter):
    """math-verify warns on every call made without its signal-based timeout, which we disable on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


@lru_cache(maxsize=1)
def _math_verify():
    try:
        import math_verify
    except ImportError:  # pragma: no cover - math-verify is a dependency
        return None
    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_NoTimeoutNotice())
    return math_verify


#: longer answers are not parsed as math (no timeout guards the parser; see _parsed)
MAX_MATH_CHARS = 200
_MATHY = re.compile(r"[\\^_{}=+*/()\d]|\bsqrt\b|\bpi\b")


@lru_cache(maxsize=4096)
def _parsed(expr: str):
    mv = _math_verify()
    if mv is None or len(expr) > MAX_MATH_CHARS or not _MATHY.search(expr):
        return None
    text = expr if "$" in expr else f"${expr}$"
    try:
        # no signal-based timeout: strategies run off the main thread too
        parsed = mv.parse(text, parsing_timeout=None)
    except Exception:  # math-verify raises on exotic input; that answer simply has no math form
        return None
    return parsed or None


@lru_cache(maxsize=8192)
def canonical(answer: str | None, kind: AnswerKind = "auto") -> str | None:
    """The vote key of an extracted answer; ``None`` for an empty or invalid one."""
    if answer is None:
        return None
    a = answer.strip()
    if not a:
        return None
    if kind == "choice":
        a = a.strip("()[]. ").upper()
        return a if len(a) == 1 and a in CHOICE_LETTERS else None
    if kind == "text":
        return normalize_text(a) or None
    num = parse_number(a)
    if num is not None:
        return fraction_key(num)
    if kind == "number":
        return None
    # math (or auto): a LaTeX expression that is not a plain number; sympy's printed form when it parses
    stripped = _strip_latex(a)
    parsed = _parsed(stripped)
    if parsed:
        head = parsed[0]
        try:
            from sympy import Basic, Number

            if isinstance(head, Number) and head.is_rational:
                return fraction_key(Fraction(str(head)))
            if isinstance(head, Basic):
                return str(head)
        except Exception:
            pass
    norm = " ".join(stripped.split())
    return norm or None


def equivalent(a: str | None, b: str | None, kind: AnswerKind = "auto") -> bool:
    """Whether two extracted answers mean the same (never true when either is invalid)."""
    ka, kb = canonical(a, kind), canonical(b, kind)
    if ka is None or kb is None:
        return False
    if ka == kb:
        return True
    if kind in ("choice", "text", "number"):
        return False
    return _verify(ka, kb)


@lru_cache(maxsize=4096)
def _verify(ka: str, kb: str) -> bool:
    mv = _math_verify()
    pa, pb = _parsed(ka), _parsed(kb)
    if mv is None or not pa or not pb:
        return False
    try:
        return bool(mv.verify(pa, pb, timeout_seconds=None))
    except Exception:
        return False


def group_keys(keys: Sequence[str | None], kind: AnswerKind = "auto") -> list[str | None]:
    """Merge vote keys that math-verify finds equal into the key seen first.

    Numbers are already exact (same value, same key); only symbolic math answers (``\\sqrt{2}/2``
    vs ``1/\\sqrt{2}``) need the pairwise check, done once per pair of distinct keys.
    """
    if kind in ("choice", "text", "number"):
        return list(keys)
    reps: list[str] = []
    out: list[str | None] = []
    for k in keys:
        if k is None:
            out.append(None)
            continue
        for r in reps:
            if r == k or (not _is_number_key(r) or not _is_number_key(k)) and _verify(r, k):
                out.append(r)
                break
        else:
            reps.append(k)
            out.append(k)
    return out


def _is_number_key(k: str) -> bool:
    return re.fullmatch(r"-?\d+(?:/\d+)?", k) is not None


def answer_keys(texts: Sequence[str | None], kind: AnswerKind = "auto") -> list[str | None]:
    """Extract, canonicalize and group: one vote key (or ``None``) per completion text."""
    return group_keys([canonical(extract(t, kind), kind) for t in texts], kind)


def is_correct(predicted_key: str | None, reference: str, kind: AnswerKind = "auto") -> bool:
    """Whether a vote key matches a reference answer (the reference is canonicalized the same way)."""
    if predicted_key is None:
        return False
    ref = canonical(reference, kind)
    if ref is None:
        return False
    return ref == predicted_key or (kind not in ("choice", "text", "number") and _verify(ref, predicted_key))
