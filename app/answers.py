"""Answers: extraction, normalization, vote keys, equivalence and grading, in one place.

Every part of junto that reads what a model answered uses this module: the voting strategies
(``junto.reasoning``), ``junto eval``, and calibration grading (``junto.routers.calibrate``). It lives
at the package root so that routers, which must not import the reasoning layer, can use it too.
Pure functions over strings, no I/O.

**Extraction** (:func:`extract`) reads the answer a completion gives, per answer *kind*:

* An explicit answer statement is read first: the last ``\\boxed{...}`` / ``\\fbox{...}`` (braces
  matched) and the last "answer is …" / "Answer: …" / "answer = …" sentence; the later of the two in
  the text wins (earlier statements are tried when it yields nothing). What follows the statement
  goes to the kind's reader: a number (``$-\\frac{1}{2}$``, ``\\(\\frac13\\)``, ``1 1/2``, ``10^3``,
  ``1{,}000``, ``1.5 \\times 10^{3}``, ``42 apples``), a choice letter (``(B)``, ``option C``), a
  math expression (``x^2 + 1``) or a short text.
* Without one: ``number`` and ``math`` read the last number in the text; ``choice`` reads
  "option X", a letter in parentheses, a line starting "X." or a lone letter ending the reply;
  ``text`` takes the whole reply; ``auto`` takes a reply that is a single letter, else the last
  number, else a choice marker, else a reply of at most :data:`AUTO_TEXT_MAX_WORDS` words.
* ``auto`` picks the reader from what it finds: a number, a choice letter, a math expression or a
  short text. Refusals ("I don't know", "cannot be determined", …) and prose are never an answer,
  so they never vote. Choice letters are read case-sensitively except where the form is explicit
  (``(b)``, ``b)``, "option b", a statement or reply that is only the letter), so the article "a" and
  the pronoun "I" are not read as options.

**Vote keys** (:func:`canonical`): numbers become exact fractions (``\\frac12``, ``1/2``, ``0.5`` and
``0.50`` all give ``"1/2"``; ``1,000``, ``1{,}000``, ``10^3`` and ``1000.0`` give ``"1000"``), choice
letters upper case, texts SQuAD-normalized (case, punctuation, articles, spaces), and math
expressions that are not plain numbers a whitespace-free normal form of their LaTeX. ``None`` means
"no valid answer": such samples are counted as spent but never get a vote. :func:`answer_keys`
also makes samples cut short by ``max_tokens`` (``finish_reason == "length"``) invalid unless told
otherwise.

**Equivalence** (:func:`equivalent`, :func:`group_keys`, :func:`is_correct`): equal keys are equal;
symbolic math keys (``\\frac{\\sqrt{2}}{2}`` vs ``\\frac{1}{\\sqrt{2}}``) are compared with
``math-verify`` (sympy underneath), once per pair of distinct keys.

**Grading** (:func:`grade`, the ``metric`` of a calibration item): ``mc``, ``numeric`` and ``math``
extract with the ``choice``, ``number`` and ``math`` readers and compare vote keys exactly as
:func:`is_correct` does, so router labels and strategy accuracy measure the same thing (numbers are
compared as exact fractions, like votes; no float tolerance). ``exact`` and ``f1`` are SQuAD's
normalized exact match and token F1, of the stated answer or of the whole reply, whichever scores
higher. A reference may be a list of accepted answers: the best match counts.

**Cost.** Every function here is linear in the length of its input: the regular expressions have
no nested or overlapping unbounded quantifiers, explicit statements are read from bounded windows
(:data:`MAX_STATEMENT_CHARS`), and only a bounded number of them is tried. ``math-verify`` runs only
in the equivalence step, only on short expressions of bounded nesting (:func:`sympy_safe`); its own
signal-based timeout is off because strategies run off the main thread.
"""

from __future__ import annotations

import logging
import re
import string
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Literal

AnswerKind = Literal["auto", "math", "number", "choice", "text"]
KINDS: tuple[str, ...] = ("auto", "math", "number", "choice", "text")
METRICS: tuple[str, ...] = ("mc", "numeric", "math", "exact", "f1")
#: the answer kind each extracting metric reads with (exact and f1 compare texts)
METRIC_KINDS: dict[str, AnswerKind] = {"mc": "choice", "numeric": "number", "math": "math", "exact": "text",
                                       "f1": "text"}

CHOICE_LETTERS = "ABCDEFGHIJ"
#: without an explicit statement, ``auto`` takes a whole reply as a text answer only up to this many words
AUTO_TEXT_MAX_WORDS = 5
#: an explicit answer statement is read from at most this many characters after its marker
MAX_STATEMENT_CHARS = 300
#: at most this many explicit statements (boxes and "answer is" markers) are tried, latest first
MAX_STATEMENTS = 4
#: a ``\\boxed{`` whose braces do not close within this many characters is not an answer
MAX_BOXED_CHARS = 300
#: expressions longer than this are never handed to math-verify (see :func:`sympy_safe`)
MAX_MATH_CHARS = 64
#: numbers written with more characters than this are not read as numbers
MAX_NUMBER_CHARS = 80

# -- small helpers -----------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_text(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD-style normalization)."""
    t = text.lower().translate(_PUNCT)
    t = _ARTICLES.sub(" ", t)
    return " ".join(t.split())


#: normalized phrases that make a short reply a refusal or a non-answer rather than an answer
REFUSALS: tuple[str, ...] = (
    "dont know", "do not know", "didnt know", "not sure", "no idea", "cannot", "cant", "can not", "unable",
    "sorry", "unknown", "unclear", "not enough", "insufficient", "not possible to", "impossible to",
    "no answer", "not determine", "undetermined", "depends", "as an ai", "language model", "not able",
    "im not", "i am not", "no way to", "not specified", "not given", "not provided",
)


def is_refusal(text: str) -> bool:
    """Whether a (short) reply declines to answer: "I don't know.", "Cannot be determined", …"""
    norm = f" {normalize_text(text)} "
    return any(f" {p} " in norm for p in REFUSALS)


# -- LaTeX clean-up ----------------------------------------------------------------------------

_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|mbox|operatorname)\s{0,2}\{([^{}]{0,200})\}")
_LATEX_REPLACE: tuple[tuple[str, str], ...] = (
    ("\\left", ""), ("\\right", ""), ("\\displaystyle", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"),
    ("\\!", ""), ("\\,", ""), ("\\;", " "), ("\\:", " "), ("\\quad", " "), ("\\ ", " "), ("~", " "),
    ("\\%", "%"), ("\\$", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\circ", ""), ("\\degree", ""), ("{,}", ","),
    ("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", ""), ("$", ""), ("−", "-"), ("\u2009", ""), ("\u202f", ""),
)


def _clean(s: str) -> str:
    """A written answer without math delimiters, text macros, spacing commands and unicode minus signs."""
    s = s.strip()
    if "\\" in s:
        s = _TEXT_CMD.sub(r"\1", s)
    for a, b in _LATEX_REPLACE:
        if a in s:
            s = s.replace(a, b)
    return s.strip()


# -- numbers -----------------------------------------------------------------------------------

# One written number. Alternatives are tried in order at each position; every quantifier is either
# bounded or over a character class that the next element cannot match, so a failed attempt costs
# O(1) amortized and scanning a text is linear. (Long digit runs are rejected afterwards.)
_NUMBER_BODY = (
    # 1) a LaTeX fraction, optionally after a whole part: -\frac{1}{2}, \frac34, 2\frac{1}{2}
    r"(?:(?P<f_whole>\d{1,12})[ ]?)?\\[dt]?frac[ ]{0,2}"
    r"(?:\{(?P<f_num>[^{}]{1,40})\}|(?P<f_num1>\d))[ ]{0,2}(?:\{(?P<f_den>[^{}]{1,40})\}|(?P<f_den1>\d))"
    # 2) scientific notation: 1.5 \times 10^{3}, 2*10^5
    r"|(?P<s_m>\d{1,12}(?:\.\d{1,12})?)[ ]{0,2}(?:\\times|\\cdot|×|\*)[ ]{0,2}10[ ]{0,2}\^"
    r"[ ]{0,2}(?:\{[ ]{0,2}(?P<s_e>[-+−]?\d{1,3})[ ]{0,2}\}|(?P<s_e1>[-−]?\d{1,3}))(?!\d)"
    # 3) a power: 10^3, 2^{-1}
    r"|(?P<p_b>\d{1,12}(?:\.\d{1,12})?)[ ]{0,2}\^[ ]{0,2}"
    r"(?:\{[ ]{0,2}(?P<p_e>[-+−]?\d{1,3})[ ]{0,2}\}|(?P<p_e1>[-−]?\d{1,3}))(?![\d.])"
    # 4) e-notation: 1.5e3
    r"|(?P<e_m>\d{1,12}(?:\.\d{1,12})?)[eE](?P<e_e>[-+]?\d{1,3})(?![\w.])"
    # 5) a mixed number: 1 1/2
    r"|(?P<m_w>\d{1,12})[ ](?P<m_n>\d{1,12})/(?P<m_d>\d{1,12})(?![\d/.])"
    # 6) a plain number, thousands separators (1,000 / 1{,}000 / 1\,000), decimals, a/b
    r"|(?P<n_a>(?:\d{1,3}(?:(?:,|\{,\}|\\,)\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:[ ]{0,2}/[ ]{0,2}(?P<n_b>\d+(?:\.\d+)?)(?![\d.]))?"
)
# in running text a number starts at a word boundary (not inside "x2", "3.5", "\frac", "x^2" or "1/2")
_NUMBER = r"(?P<sign>[-+−]?)(?=[\d.\\])(?:" + _NUMBER_BODY + ")"
_NUMBER_IN_TEXT = re.compile(r"(?=[-+−\d.\\])(?<![\w.\\^/])" + _NUMBER)
_NUMBER_AT_START = re.compile(_NUMBER)
_UNITS = re.compile(r"(?:%|°|[A-Za-z]{1,20}\.?)(?:[ ]{1,3}[A-Za-z]{1,20}\.?){0,2}")
_VAR_PREFIX = re.compile(r"[A-Za-z][ ]{0,3}=[ ]{0,3}")
#: exponent × digits of the base above which a power is not expanded into a number
_MAX_POWER_DIGITS = 1000


def _frac(s: str) -> Fraction:
    s = s.replace("{,}", "").replace("\\,", "").replace(",", "").replace("−", "-").replace(" ", "")
    if len(s) > MAX_NUMBER_CHARS:
        raise ValueError("too long")
    return Fraction(s)


def _power(base: Fraction, exp: int) -> Fraction:
    digits = max(len(str(abs(base.numerator))), len(str(base.denominator))) - 1  # 10 → 1, 2 → 0
    if abs(exp) * max(digits, 1) > _MAX_POWER_DIGITS:
        raise ValueError("too large")
    return base ** exp


def _value(m: re.Match[str]) -> Fraction | None:
    """The exact value of a match of the number pattern (``None`` when it is not a finite number)."""
    g = m.group
    try:
        if g("f_num") is not None or g("f_num1") is not None:
            num = parse_number(g("f_num") or g("f_num1"))
            den = parse_number(g("f_den") or g("f_den1"))
            if num is None or den is None or den == 0:
                return None
            v = num / den + (int(g("f_whole")) if g("f_whole") else 0)
        elif g("s_m") is not None:
            v = _frac(g("s_m")) * _power(Fraction(10), int((g("s_e") or g("s_e1")).replace("−", "-")))
        elif g("p_b") is not None:
            v = _power(_frac(g("p_b")), int((g("p_e") or g("p_e1")).replace("−", "-")))
        elif g("e_m") is not None:
            v = _frac(g("e_m")) * _power(Fraction(10), int(g("e_e")))
        elif g("m_w") is not None:
            d = int(g("m_d"))
            if d == 0:
                return None
            v = int(g("m_w")) + Fraction(int(g("m_n")), d)
        else:
            v = _frac(g("n_a"))
            if g("n_b") is not None:
                b = _frac(g("n_b"))
                if b == 0:
                    return None
                v = v / b
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return -v if g("sign") in ("-", "−") else v


def parse_number(s: str) -> Fraction | None:
    """An exact value for one written number, or ``None``.

    Reads ``1,234.5``, ``-3``, ``3/4``, ``1 1/2``, ``\\frac{3}{4}``, ``\\frac34``, ``-\\dfrac{7}{2}``,
    ``10^3``, ``2^{-1}``, ``1.5 \\times 10^{3}``, ``1{,}000``, ``$5``, ``12 cm``, ``50%`` (→ 50),
    ``x = 7``; not ``3 apples and 4 pears`` or ``2x+1`` (more than one number, or an expression).
    """
    s = _clean(s)
    if not s or len(s) > 200:
        return None
    m = _VAR_PREFIX.match(s)
    if m:
        s = s[m.end():]
    s = s.lstrip("€£").strip().rstrip(".").strip()
    m = _NUMBER_AT_START.match(s)
    if m is None:
        return None
    rest = s[m.end():].strip()
    if rest and (len(rest) > 64 or not _UNITS.fullmatch(rest)):
        return None
    return _value(m)


def fraction_key(v: Fraction) -> str:
    """The vote key of an exact number: ``"3"``, ``"-1/2"``."""
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


#: last_number looks at this many final characters first (the whole text only when they hold no number)
_TAIL_WINDOW = 4000


def _last_valid(text: str, pos: int) -> re.Match[str] | None:
    matches = list(_NUMBER_IN_TEXT.finditer(text, pos))  # lookbehind still sees text before pos
    for m in reversed(matches):
        if _value(m) is not None:
            return m
    return None


def last_number(text: str) -> str | None:
    """The last number written in ``text``, as written (``1,250``, ``3/4``, ``\\frac{1}{2}``, ``10^3``)."""
    start = max(0, len(text) - _TAIL_WINDOW)
    found = _last_valid(text, start)
    if found is None and start > 0:
        found = _last_valid(text, 0)
    return found.group(0).strip() if found else None


def first_number(text: str) -> str | None:
    """The first number written in ``text`` (see :func:`last_number`)."""
    for m in _NUMBER_IN_TEXT.finditer(text):
        if _value(m) is not None:
            return m.group(0).strip()
    return None


# -- explicit answer statements ----------------------------------------------------------------

_BOXED = re.compile(r"\\(?:boxed|fbox)")
_MARKER = re.compile(
    r"\banswer(?:\*\*)?[ \t]{0,3}(?:(?:is|was|would[ \t]{1,3}be|will[ \t]{1,3}be|should[ \t]{1,3}be|must[ \t]{1,3}be)\b"
    r"[ \t]{0,3}:?|[:=])", re.IGNORECASE)
_WRAP_CHARS = " \t\r\n*:\"'`_"


def _boxed_at(text: str, start: int) -> str | None:
    """Content of the ``\\boxed`` whose macro starts at ``start``; braces matched within a bounded window."""
    i = start + (6 if text.startswith("\\boxed", start) else 5)
    while i < len(text) and text[i] in " \t":
        i += 1
    if i >= len(text):
        return None
    if text[i] != "{":
        j = i
        while j < len(text) and j - i < 40 and not text[j].isspace() and text[j] not in "$\\":
            j += 1
        tok = text[i:j].rstrip(".,;")
        return tok or None
    depth = 0
    end = min(len(text), i + MAX_BOXED_CHARS)
    for j in range(i, end):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                content = text[i + 1:j].strip()
                return content or None
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last closed ``\\boxed{...}`` / ``\\fbox{...}`` (braces matched); ``\\boxed 5`` too."""
    for _, content in _statements(text, markers=False):
        return content
    return None


def _sentence(text: str, start: int) -> str | None:
    """The statement after an answer marker: to the end of its line or sentence, within a bounded window."""
    seg = text[start:start + MAX_STATEMENT_CHARS].lstrip(_WRAP_CHARS)
    depth, in_math = 0, False
    n = len(seg)
    for j, c in enumerate(seg):
        if c == "\n":
            seg = seg[:j]
            break
        if c == "{":
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
        elif c == "$":
            in_math = not in_math
        elif c in ".!?" and depth == 0 and not in_math and (j + 1 == n or seg[j + 1].isspace()):
            seg = seg[:j]
            break
    seg = seg.strip().strip("*` ").strip()
    return seg or None


def _statements(text: str, markers: bool = True) -> list[tuple[int, str]]:
    """Explicit answer statements (position, content), latest first, at most :data:`MAX_STATEMENTS`.

    Boxes and "answer is" markers are found in one linear scan each; only the last few are read.
    """
    boxes: list[int] = []
    for m in _BOXED.finditer(text):
        boxes.append(m.start())
        if len(boxes) > MAX_STATEMENTS:
            del boxes[0]
    found: list[tuple[int, str]] = []
    for pos in boxes:
        content = _boxed_at(text, pos)
        if content is not None:
            found.append((pos, content))
    if markers:
        ends: list[tuple[int, int]] = []
        for m in _MARKER.finditer(text):
            ends.append((m.start(), m.end()))
            if len(ends) > MAX_STATEMENTS:
                del ends[0]
        for pos, end in ends:
            # "the answer is $\boxed{5}$": the box starts later, so it is tried first
            content = _sentence(text, end)
            if content is not None:
                found.append((pos, content))
    found.sort(key=lambda x: -x[0])
    return found[:MAX_STATEMENTS]


def answer_span(text: str) -> str | None:
    """The latest explicit answer statement as written (box content or the "answer is" sentence)."""
    st = _statements(text)
    return st[0][1] if st else None


def _unwrap(s: str) -> str:
    """A statement without math delimiters, emphasis, quotes and a final period."""
    s = s.strip().strip(_WRAP_CHARS)
    for a, b in (("\\(", ""), ("\\)", ""), ("\\[", ""), ("\\]", ""), ("$", "")):
        if a in s:
            s = s.replace(a, b)
    s = s.strip().strip(_WRAP_CHARS).rstrip(".,;").strip().strip(_WRAP_CHARS).rstrip(".,;")
    if s.startswith(("\\boxed", "\\fbox")):  # "the answer is $\boxed{5}$" read as a sentence
        s = _boxed_at(s, 0) or s
    return s


# -- choice letters ----------------------------------------------------------------------------

# a letter as the first token of a statement: "(B)", "B", "b)", "option C", "\text{(C)}"
_LEAD_CHOICE = re.compile(
    r"(?:(?:option|choice|letter)[ \t]{1,3})?(?P<open>[(\[])?[ \t]?(?P<letter>[A-Ja-j])[ \t]?(?P<close>[)\]])?"
    r"(?![A-Za-z0-9'’-])", re.IGNORECASE)
_OPTION = re.compile(r"\b(?:option|choice)[ \t]{1,3}[(\[]?([A-Ja-j])[)\]]?(?![A-Za-z0-9])", re.IGNORECASE)
_PAREN_LETTER = re.compile(r"(?<![A-Za-z0-9])[(\[]([A-J])[)\]]")
_LINE_LETTER = re.compile(r"(?m)^[ \t]{0,3}\*{0,2}[ \t]{0,2}([A-J])\*{0,2}[.):](?=\s|$)")
_ONLY_LETTER = re.compile(r"[(\[]?[ \t]?([A-Ja-j])[ \t]?[)\]]?[.:]?")
_END_LETTER = re.compile(r"(?<![A-Za-z0-9'\\])([A-J])[ \t]{0,3}[.)\]]?[ \t]{0,3}$")
#: words after a bare "A"/"a" or "I" that make it an option letter rather than an article or pronoun
_AFTER_LETTER = frozenset({"because", "since", "as", "which", "and", "is", "was", "for", "with", "from", "option",
                           "choice", "so", "or", "but", "if", "here", "there", "too", "also"})


def _letters(n_choices: int) -> str:
    return CHOICE_LETTERS[:max(1, min(int(n_choices), len(CHOICE_LETTERS)))]


def _lead_choice(s: str, letters: str) -> str | None:
    """A choice letter that opens a statement, or ``None`` (the article "a", the pronoun "I" are not)."""
    s = _unwrap(_clean(s))
    m = _LEAD_CHOICE.match(s)
    if m is None:
        return None
    letter = m.group("letter")
    up = letter.upper()
    if up not in letters:
        return None
    explicit = m.group("close") is not None or m.group("open") is not None or s[:6].lower() in ("option", "choice")
    if explicit:
        return up
    rest = s[m.end():]
    word = rest.lstrip()
    if rest[:1] == "." and rest[1:2].isalpha():  # "i.e.", "e.g."
        return None
    if not word or not rest[:1].isspace():
        return up if letter.isupper() or not word or word[:1] in ".:,;" else None
    # a word follows: "B because …" is an option; "a bit tricky", "I think", "c is …" are words
    if letter.islower() or up in "AI":
        nxt = word.split(None, 1)[0].strip(".,;:!?").lower()
        return up if nxt in _AFTER_LETTER and letter.isupper() else None
    return up


def _last(pattern: re.Pattern[str], text: str, letters: str) -> str | None:
    found = None
    for m in pattern.finditer(text):
        up = m.group(1).upper()
        if up in letters:
            found = up
    return found


def _choice_fallback(text: str, letters: str) -> str | None:
    stripped = text.strip()
    if len(stripped) <= 12:
        m = _ONLY_LETTER.fullmatch(stripped)
        if m and m.group(1).upper() in letters:
            return m.group(1).upper()
    for pat in (_OPTION, _PAREN_LETTER, _LINE_LETTER):
        got = _last(pat, text, letters)
        if got is not None:
            return got
    m = _END_LETTER.search(text[-40:])
    if m and m.group(1) in letters and m.group(1) != "I":
        return m.group(1)
    return None


def extract_choice(text: str, n_choices: int = len(CHOICE_LETTERS)) -> str | None:
    """The option letter (A–J, or the first ``n_choices``) a completion commits to, or ``None``."""
    if not text or not text.strip():
        return None
    letters = _letters(n_choices)
    for _, st in _statements(text):
        got = _lead_choice(st, letters)
        if got is not None:
            return got
    return _choice_fallback(text, letters)


# -- numbers and math --------------------------------------------------------------------------

_MATHY = re.compile(r"[\\^_{}=+*/()\d<>]|\bsqrt\b|\bpi\b")
_WORD3 = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_KNOWN_WORDS = frozenset({"sqrt", "pi", "sin", "cos", "tan", "log", "ln", "exp", "inf", "infty", "cdot", "times"})


def _is_expression(s: str) -> bool:
    """Whether a short statement reads as a math expression (``x^2 + 1``, ``\\sqrt{2}/2``), not prose."""
    if not s or len(s) > 80 or not _MATHY.search(s):
        return False
    return all(w.group(0).lower() in _KNOWN_WORDS for w in _WORD3.finditer(s))


def _rhs(s: str) -> str:
    """The right-hand side of the last top-level ``=`` ("2 + 2 = 4" → "4")."""
    depth, cut = 0, -1
    for j, c in enumerate(s):
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        elif c == "=" and depth == 0:
            cut = j
    return s[cut + 1:].strip() if cut >= 0 else s


def _as_number(s: str) -> str | None:
    """``s`` when it is one number (units allowed), trimmed to the number as written ("4 cats" → "4")."""
    v = parse_number(s)
    if v is None:
        return None
    m = _NUMBER_AT_START.match(s)
    return m.group(0).strip() if m is not None and _value(m) == v else s


def _leading_number(s: str) -> str | None:
    """A number that opens ``s`` and is followed by words or a remark, not by more math:
    "12 (3 × 4 = 12)", "12, which is …", "42 apples" → the number; "2\\sqrt{3}", "3x + 2" → ``None``."""
    m = _NUMBER_AT_START.match(s)
    if m is None or _value(m) is None:
        return None
    rest = s[m.end():]
    after = rest.lstrip()
    if not after or after[0] in ",;:":
        return m.group(0).strip()
    if rest[:1].isspace() and (after[0] in "([" or after[:2].isalpha()):
        return m.group(0).strip()
    return None


def _read_number(st: str) -> str | None:
    s = _unwrap(st)
    if not s:
        return None
    s = _rhs(s) or s
    return _as_number(s) or first_number(s)


def _read_math(st: str) -> str | None:
    s = _unwrap(st)
    if not s:
        return None
    s = _rhs(s) or s
    num = _as_number(s) or _leading_number(s)
    if num is not None:
        return num
    if "\\" in s and len(s) <= 80 or _is_expression(s):
        return s
    return first_number(s)


def extract_number(text: str) -> str | None:
    """The number a completion answers, as written: its explicit statement's, else its last number."""
    if not text or not text.strip():
        return None
    for _, st in _statements(text):
        got = _read_number(st)
        if got is not None:
            return got
    return last_number(text)


def extract_math(text: str) -> str | None:
    """The math answer of a completion, as written: its explicit statement (a number or an expression;
    "2 + 2 = 4" gives 4), else its last number."""
    if not text or not text.strip():
        return None
    for _, st in _statements(text):
        got = _read_math(st)
        if got is not None:
            return got
    return last_number(text)


def _short_text(s: str, max_words: int = AUTO_TEXT_MAX_WORDS) -> str | None:
    s = s.strip()
    if not s or "\n" in s.strip() or len(s) > 20 * max_words or is_refusal(s):
        return None
    norm = normalize_text(s)
    return s if norm and len(norm.split()) <= max_words else None


def _read_auto(st: str, letters: str) -> str | None:
    """``auto``'s reader of a statement: a number, a choice letter, a math expression or a short text."""
    s = _unwrap(st)
    if not s:
        return None
    r = _rhs(s) or s
    num = _as_number(r)
    if num is not None:
        return num
    letter = _lead_choice(s, letters)
    if letter is not None:
        return letter
    num = _leading_number(r)
    if num is not None:
        return num
    if "\\" in r and len(r) <= 80 or _is_expression(r):
        return r
    return first_number(r) or _short_text(s)


def extract_text(text: str) -> str | None:
    """A free-text answer as written: the explicit statement if there is one, else the whole reply."""
    if not text or not text.strip():
        return None
    st = _statements(text)
    return _unwrap(st[0][1]) or text.strip() if st else text.strip()


def extract(text: str | None, kind: AnswerKind = "auto", *, n_choices: int = len(CHOICE_LETTERS)) -> str | None:
    """The answer a completion gives, as written (:func:`canonical` turns it into a vote key)."""
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; one of {', '.join(KINDS)}")
    if not text or not text.strip():
        return None
    if kind == "number":
        return extract_number(text)
    if kind == "math":
        return extract_math(text)
    if kind == "choice":
        return extract_choice(text, n_choices)
    if kind == "text":
        return extract_text(text)
    letters = _letters(n_choices)
    for _, st in _statements(text):
        got = _read_auto(st, letters)
        if got is not None:
            return got
    stripped = text.strip()
    if len(stripped) <= 12:
        m = _ONLY_LETTER.fullmatch(stripped)
        if m and m.group(1).upper() in letters:
            return m.group(1).upper()
    num = last_number(text)
    if num is not None:
        return num
    letter = _last(_OPTION, text, letters) or _last(_LINE_LETTER, text, letters)
    if letter is not None:
        return letter
    return _short_text(stripped)


# -- vote keys ---------------------------------------------------------------------------------

_BRACED_ATOM = re.compile(r"([\^_])\{([A-Za-z0-9])\}")
_FRAC_DIGITS = re.compile(r"\\frac(\d)(\d)")
_SQRT_DIGIT = re.compile(r"\\sqrt(\d)")
_NUMBER_KEY = re.compile(r"-?\d+(?:/\d+)?")
_MATH_KEY_CHARS = frozenset("\\^_{}()[]+-*/=<>!|")


def _math_key(s: str) -> str | None:
    """A whitespace-free normal form of a LaTeX expression (``x^{2} + 1`` → ``x^2+1``)."""
    s = "".join(_clean(s).split())
    s = _FRAC_DIGITS.sub(r"\\frac{\1}{\2}", s)
    s = _SQRT_DIGIT.sub(r"\\sqrt{\1}", s)
    s = _BRACED_ATOM.sub(r"\1\2", s)
    return s or None


def _choice_key(a: str) -> str | None:
    s = _unwrap(_clean(a))
    if len(s) > 12:
        return None
    m = _ONLY_LETTER.fullmatch(s)
    return m.group(1).upper() if m else None


def _canonical(a: str, kind: str) -> str | None:
    a = _unwrap(a)  # "$\\boxed{5}$", "\\(x\\)", "**7**."
    if not a:
        return None
    if kind == "choice":
        return _choice_key(a)
    if kind == "text":
        if is_refusal(a):
            return None
        return normalize_text(a) or None
    num = parse_number(a)
    if num is not None:
        return fraction_key(num)
    if kind == "number":
        return None
    if kind == "auto":
        letter = _choice_key(a)  # a lone option letter: "B", "(b)", "\\text{C}"
        if letter is not None:
            return letter
    # math (or auto): an expression, else a short text answer
    if len(a) <= 80 and ("\\" in a or _is_expression(a)):
        return _math_key(a)
    short = _short_text(a)
    return normalize_text(short) or None if short is not None else None


@lru_cache(maxsize=8192)
def _canonical_cached(a: str, kind: str) -> str | None:
    return _canonical(a, kind)


def canonical(answer: str | None, kind: AnswerKind = "auto") -> str | None:
    """The vote key of an extracted answer; ``None`` for an empty or invalid one."""
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; one of {', '.join(KINDS)}")
    if answer is None:
        return None
    a = answer.strip()
    if not a:
        return None
    return _canonical_cached(a, kind) if len(a) <= 256 else _canonical(a, kind)


def answer_key(text: str | None, kind: AnswerKind = "auto", *, n_choices: int = len(CHOICE_LETTERS)) -> str | None:
    """Extract and canonicalize one completion (no grouping across samples)."""
    return canonical(extract(text, kind, n_choices=n_choices), kind)


# -- equivalence -------------------------------------------------------------------------------

def _is_number_key(k: str) -> bool:
    return _NUMBER_KEY.fullmatch(k) is not None


def _is_math_key(k: str) -> bool:
    """Keys that math-verify may compare: numbers and expressions (never choice letters or texts)."""
    return _is_number_key(k) or any(c in _MATH_KEY_CHARS for c in k)


_BRUTE_FORCE_OPS = ("\\sum", "\\prod", "\\binom", "\\choose", "\\int", "\\lim", "!")


def sympy_safe(expr: str) -> bool:
    """Whether math-verify may parse ``expr`` quickly: short, shallow, small numbers, no tower of powers.

    math-verify's parser (ANTLR, then sympy) slows down sharply with bracket nesting and may try to
    evaluate huge powers or factorials; it has no timeout off the main thread. So: at most
    :data:`MAX_MATH_CHARS` characters, bracket depth ≤ 3, ≤ 4 commas, digit runs ≤ 12 (≤ 3 in a
    braced exponent, and everywhere when sums, products, binomials, integrals, limits or factorials
    appear), and no ``^`` inside an exponent.
    """
    if not expr or len(expr) > MAX_MATH_CHARS:
        return False
    # operators sympy may evaluate by brute force get small numbers only
    max_run = 3 if any(op in expr for op in _BRUTE_FORCE_OPS) else 12
    depth = commas = run = 0
    exp_depth = -1  # bracket depth at which the current braced exponent opened
    prev = ""
    for i, c in enumerate(expr):
        if c.isdigit():
            run += 1
            if run > max_run or run > 3 and exp_depth >= 0:
                return False
        else:
            if c == "!" and run > 3:
                return False
            run = 0
        if c in "({[":
            depth += 1
            if depth > 3:
                return False
            if prev == "^" and c == "{" and exp_depth < 0:
                exp_depth = depth
        elif c in ")}]":
            if exp_depth == depth:
                exp_depth = -1
            depth -= 1
        elif c == ",":
            commas += 1
            if commas > 4:
                return False
        elif c == "^":
            if exp_depth >= 0 or prev == "^":
                return False
            nxt = expr[i + 1:i + 2]
            if nxt and nxt not in "{" and expr[i + 2:i + 3] == "^":
                return False
        prev = c
    return True


class _NoTimeoutNotice(logging.Filter):
    """math-verify warns on every call made without its signal-based timeout, which we disable on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


@lru_cache(maxsize=1)
def _math_verify():
    try:
        import math_verify
    except ImportError:  # pragma: no cover - math-verify is a dependency of the reasoning extra
        return None
    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_NoTimeoutNotice())
    return math_verify


@lru_cache(maxsize=4096)
def _parsed(expr: str):
    if not sympy_safe(expr):
        return None
    mv = _math_verify()
    if mv is None:
        return None
    try:
        # no signal-based timeout: strategies run off the main thread too (sympy_safe bounds the work)
        parsed = mv.parse(f"${expr}$", parsing_timeout=None)
    except Exception:  # math-verify raises on exotic input; that answer simply has no math form
        return None
    return parsed or None


def _number_to_latex(k: str) -> str:
    if "/" in k and _is_number_key(k):
        a, b = k.split("/")
        return f"-\\frac{{{a[1:]}}}{{{b}}}" if a.startswith("-") else f"\\frac{{{a}}}{{{b}}}"
    return k


@lru_cache(maxsize=4096)
def _verify(ka: str, kb: str) -> bool:
    """math-verify's equivalence of two math keys (symmetric; ``False`` when either cannot be parsed)."""
    if _is_number_key(ka) and _is_number_key(kb):
        return ka == kb
    pa, pb = _parsed(_number_to_latex(ka)), _parsed(_number_to_latex(kb))
    mv = _math_verify()
    if mv is None or not pa or not pb:
        return False
    try:
        return bool(mv.verify(pa, pb, timeout_seconds=None))
    except Exception:
        return False


def _same(ka: str, kb: str, kind: str) -> bool:
    if ka == kb:
        return True
    if kind in ("choice", "text", "number"):
        return False
    if not (_is_math_key(ka) and _is_math_key(kb)) or _is_number_key(ka) and _is_number_key(kb):
        return False
    return _verify(ka, kb) if ka <= kb else _verify(kb, ka)


def equivalent(a: str | None, b: str | None, kind: AnswerKind = "auto") -> bool:
    """Whether two extracted answers mean the same (never true when either is invalid)."""
    ka, kb = canonical(a, kind), canonical(b, kind)
    return ka is not None and kb is not None and _same(ka, kb, kind)


def group_keys(keys: Sequence[str | None], kind: AnswerKind = "auto") -> list[str | None]:
    """Merge vote keys that math-verify finds equal into the key seen first.

    Numbers are already exact (same value, same key) and letters and texts compare as strings; only
    symbolic math keys (``\\sqrt{2}/2`` vs ``\\frac{1}{\\sqrt{2}}``) need the check, done once per pair
    of distinct keys.
    """
    if kind in ("choice", "text", "number"):
        return list(keys)
    reps: list[str] = []
    out: list[str | None] = []
    merged: dict[str, str] = {}
    for k in keys:
        if k is None:
            out.append(None)
            continue
        if k in merged:
            out.append(merged[k])
            continue
        for r in reps:
            if _same(r, k, kind):
                merged[k] = r
                break
        else:
            reps.append(k)
            merged[k] = k
        out.append(merged[k])
    return out


def answer_keys(texts: Sequence[str | None], kind: AnswerKind = "auto", *,
                finish_reasons: Sequence[str | None] | None = None, allow_truncated: bool = False,
                n_choices: int = len(CHOICE_LETTERS)) -> list[str | None]:
    """Extract, canonicalize and group: one vote key (or ``None``) per completion text.

    A completion whose finish reason is ``"length"`` (cut by ``max_tokens``) gets ``None`` unless
    ``allow_truncated``: its last number is usually a step of the reasoning, not its answer.
    """
    keys = [answer_key(t, kind, n_choices=n_choices) for t in texts]
    if finish_reasons is not None and not allow_truncated:
        keys = [None if fr == "length" else k for k, fr in zip(keys, finish_reasons)] + keys[len(finish_reasons):]
    return group_keys(keys, kind)


def is_correct(predicted_key: str | None, reference: str, kind: AnswerKind = "auto") -> bool:
    """Whether a vote key matches a reference answer (the reference is canonicalized the same way)."""
    if predicted_key is None:
        return False
    ref = canonical(str(reference), kind)
    return ref is not None and _same(ref, predicted_key, kind)


# -- grading -----------------------------------------------------------------------------------

def exact_match(prediction: str, reference: str) -> float:
    """SQuAD's exact match after :func:`normalize_text`."""
    return float(normalize_text(prediction) == normalize_text(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1 after :func:`normalize_text`."""
    p, r = normalize_text(prediction).split(), normalize_text(reference).split()
    if not p or not r:
        return float(p == r)
    same = sum((Counter(p) & Counter(r)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(r)
    return 2 * precision * recall / (precision + recall)


def grade(metric: str, prediction: str, reference: str | Sequence[str], *, n_choices: int = 5) -> float:
    """Score ``prediction`` against ``reference`` (or the best of several) under ``metric``, in [0, 1].

    ``mc``, ``numeric`` and ``math`` are 1 exactly when the vote key of the prediction (choice letter
    among the first ``n_choices``, number, math) :func:`is_correct` for the reference; ``exact`` and
    ``f1`` compare the stated answer (or the whole reply) with SQuAD's normalization.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    refs = [reference] if isinstance(reference, str) else [str(r) for r in reference]
    if not refs:
        return 0.0
    prediction = prediction or ""
    if metric in ("mc", "numeric", "math"):
        kind = METRIC_KINDS[metric]
        key = canonical(extract(prediction, kind, n_choices=n_choices), kind)
        return float(any(is_correct(key, ref, kind) for ref in refs))
    stated = answer_span(prediction)
    stated = _unwrap(stated) if stated else None
    best = 0.0
    for ref in refs:
        if metric == "exact":
            s = max(exact_match(prediction, ref), exact_match(stated, ref) if stated else 0.0)
        else:
            s = max(token_f1(prediction, ref), token_f1(stated, ref) if stated else 0.0)
        best = max(best, s)
    return best


__all__ = [
    "AnswerKind", "KINDS", "METRICS", "METRIC_KINDS", "CHOICE_LETTERS", "AUTO_TEXT_MAX_WORDS", "REFUSALS",
    "extract", "extract_choice", "extract_number", "extract_math", "extract_text", "answer_span", "last_boxed",
    "last_number", "first_number", "parse_number", "fraction_key", "normalize_text", "is_refusal", "canonical",
    "answer_key", "answer_keys", "group_keys", "equivalent", "is_correct", "sympy_safe", "exact_match", "token_f1",
    "grade",
]
