"""Example tests a code problem states itself: the judge of ``xolver`` checks code against them.

Pure and linear in the text's length. The problem's own examples are read, never its hidden tests:

* doctest lines: ``>>> f(x)`` (``...`` continuation lines join the call) and the line(s) after it, up to a
  blank line, the next ``>>>`` or the docstring's end, as the expected value;
* one-line claims ``f(x) == y``, ``f(x) ➞ y``, ``f(x) => y`` and ``f(x) -> y``, wherever they stand
  (``Example: f(x) ➞ y``, ``- f(x) == y``).

A test is kept only when its call side is a Python expression calling a function the problem defines
(``def name(``) and its expected side is a Python literal (``ast.literal_eval``): prose around an
arrow is not a test. Each side is bounded (:data:`MAX_EXPR_CHARS`) before Python's parser sees it,
lines longer than :data:`MAX_LINE_CHARS` are skipped and at most :data:`MAX_TESTS` tests are kept, so
the work per line is bounded and the whole parse is linear.

:func:`example_tests` is the entry point; :func:`harness` writes the program that runs them (in
:func:`junto.sandbox.run_python`, by the judge).
"""

from __future__ import annotations

import ast
import json

__all__ = ["MAX_EXPR_CHARS", "MAX_LINE_CHARS", "MAX_TESTS", "Example", "defined_functions", "example_tests",
           "function_prompt", "harness"]

#: longest call or expected value considered (characters)
MAX_EXPR_CHARS = 600
#: longest line scanned for a one-line claim
MAX_LINE_CHARS = 2_000
#: most tests kept per problem
MAX_TESTS = 40
#: one-line claim operators, longest first at each position
_ARROWS = ("==>", "==", "➞", "=>", "->", "→", "should return", "returns", "should be", "=")
_QUOTES = "\"'"
#: builtins an example's call side may use besides the problem's functions (``round(f(x), 2)``)
_BUILTINS = frozenset({"round", "abs", "len", "sorted", "list", "tuple", "set", "dict", "str", "int", "float",
                       "bool", "sum", "min", "max", "all", "any", "range", "reversed", "math"})
_OPEN, _CLOSE = "([{", ")]}"

Example = tuple[str, str]
"""(call expression, expected literal), both Python source."""


def _ident_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def defined_functions(text: str) -> list[str]:
    """Names after ``def`` at the start of a line (any indent), in order, without repeats."""
    names: list[str] = []
    for line in text.splitlines():
        s = line.lstrip()
        if not s.startswith("def ") and not s.startswith("async def "):
            continue
        s = s[4:] if s.startswith("def ") else s[10:]
        s = s.lstrip()
        j = 0
        while j < len(s) and _ident_char(s[j]):
            j += 1
        if j and s[j:].lstrip().startswith("(") and not s[0].isdigit() and s[:j] not in names:
            names.append(s[:j])
    return names


_CODE_STARTS = ("def ", "async def ", "from ", "import ", "class ", "@")


def function_prompt(question: str) -> str:
    """The code of a function prompt inside a request: from its first top-level ``def``/``import``/``from``/
    ``class``/decorator line up to a closing code fence (```), or the end. A request that wraps the prompt
    in instructions and a fence (:func:`junto.routers.tasks.code_prompt`) gives back the prompt itself."""
    lines = (question or "").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(_CODE_STARTS)), None)
    if start is None:
        return (question or "").strip("\n")
    end = next((j for j in range(start + 1, len(lines)) if lines[j].strip().startswith("```")), len(lines))
    return "\n".join(lines[start:end]).strip("\n") + "\n"


def _calls_known(expr: str, names: set[str]) -> bool:
    """Is ``expr`` one Python expression holding a call to one of ``names``?"""
    if not expr or len(expr) > MAX_EXPR_CHARS:
        return False
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    nodes = list(ast.walk(tree))
    # every name is a defined function or a harmless builtin: ``f(x)`` with an unbound ``x`` is prose, not a test
    if any(isinstance(n, ast.Name) and n.id not in names and n.id not in _BUILTINS for n in nodes):
        return False
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names for n in nodes)


def _literal(expr: str) -> bool:
    if not expr or len(expr) > MAX_EXPR_CHARS:
        return False
    try:
        ast.literal_eval(expr)
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return False
    return True


#: lower-case spellings of Python's constants that problems use (``=> true``)
_CONSTANTS = {"true": "True", "false": "False", "none": "None", "null": "None"}


def _expected(raw: str) -> str | None:
    """The expected value as a literal: the text itself, without a trailing ``.``/``,``/``;``, a lower-case
    constant (``true``), or the last term of a worked sum (``-> 19 - 5 - 6 = 8``: ``8``)."""
    raw = raw.strip()
    if len(raw) > MAX_EXPR_CHARS:
        return None
    for cand in (raw, raw.rstrip(".,;").rstrip()):
        cand = _CONSTANTS.get(cand, cand)
        if _literal(cand):
            return cand
    eq = raw.rfind("=")
    if eq > 0 and raw[eq - 1] not in "=!<>":
        tail = raw[eq + 1:].strip().rstrip(".,;").rstrip()
        tail = _CONSTANTS.get(tail, tail)
        if _literal(tail):
            return tail
    return None


def _claim(line: str, names: set[str]) -> Example | None:
    """A one-line claim ``<call> OP <literal>``. Only an operator right after a top-level bracket group that
    closes (outside strings) is tried, once per group, each try bounded by :data:`MAX_EXPR_CHARS`: the call
    side starts at the name before that group's ``(``."""
    depth, quote, group_start, closed, i, n = 0, "", -1, False, 0, len(line)
    while i < n:
        c = line[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
            i += 1
            continue
        if depth == 0 and closed and not c.isspace():
            closed = False
            for op in _ARROWS:
                if line.startswith(op, i) and not (op[-1].isalpha() and _ident_char(line[i + len(op):i + len(op) + 1])):
                    found = _split(line, i, op, group_start, names)
                    if found is not None:
                        return found
                    break
        if c in _QUOTES:
            quote = c
        elif c in _OPEN:
            if depth == 0:
                group_start = i
            depth += 1
        elif c in _CLOSE:
            depth = max(depth - 1, 0)
            closed = depth == 0 and c == ")"
        i += 1
    return None


def _split(line: str, at: int, op: str, group_start: int, names: set[str]) -> Example | None:
    if group_start <= 0 or at - group_start > MAX_EXPR_CHARS:
        return None
    j, stop = group_start, max(group_start - 80, 0)  # a dotted name of at most 80 characters
    while j > stop and (_ident_char(line[j - 1]) or line[j - 1] == "."):
        j -= 1
    call = line[j:at].strip()
    if not call.endswith(")") or not _calls_known(call, names):
        return None
    start = at + len(op)
    expected = _expected(line[start:start + MAX_EXPR_CHARS + 1])
    return (call, expected) if expected is not None else None


def example_tests(text: str, names: list[str] | None = None) -> list[Example]:
    """The example tests ``text`` states for the functions it defines (``names``: those functions; default:
    every ``def`` in the text). Order of appearance, without repeats, at most :data:`MAX_TESTS`."""
    text = text or ""
    known = set(names if names is not None else defined_functions(text))
    if not known:
        return []
    lines = text.splitlines()
    out: list[Example] = []
    seen: set[Example] = set()

    def keep(ex: Example | None) -> None:
        if ex is not None and ex not in seen and len(out) < MAX_TESTS:
            seen.add(ex)
            out.append(ex)

    i, n = 0, len(lines)
    while i < n and len(out) < MAX_TESTS:
        s = lines[i].strip()
        if s.startswith(">>>"):
            call, size = s[3:].strip(), len(s)
            i += 1
            while i < n and lines[i].strip().startswith("...") and size <= MAX_EXPR_CHARS:
                t = lines[i].strip()
                part = t[4:] if t.startswith("... ") else t[3:]
                call += "\n" + part
                size += len(part)
                i += 1
            got: list[str] = []
            size = 0
            while i < n:
                t = lines[i].strip()
                if not t or t.startswith(">>>") or '"""' in t or "'''" in t:
                    break
                got.append(t)
                size += len(t)
                i += 1
                if size > MAX_EXPR_CHARS:
                    break
            if not got:  # ``>>> f(x) == y`` with no output line: a one-line claim
                keep(_claim(call, known) if len(call) <= MAX_LINE_CHARS else None)
            elif size <= MAX_EXPR_CHARS and _calls_known(call, known):
                expected = _expected(" ".join(got))
                if expected is not None:
                    keep((call, expected))
            continue
        if len(s) <= MAX_LINE_CHARS:
            keep(_claim(s, known))
        i += 1
    return out


def harness(tests: list[Example], token: str, entry: str) -> str:
    """Python source, HumanEval-style (``def check(candidate)`` and ``check(<entry>)``), that runs each test and
    prints ``{token} <index> <pass|fail>`` per test (flushed, so the tests that finished before a timeout
    still count). Floats compare with ``math.isclose``."""
    return f"""

def __junto_check():
    import math as _m, sys as _s
    def same(a, b):
        if isinstance(a, float) or isinstance(b, float):
            try:
                return _m.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
            except TypeError:
                return False
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
            return type(a) is type(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b
    for i, (call, expected) in enumerate({json.dumps(tests)}):
        try:
            ok = same(eval(call, globals()), eval(expected, {{}}))
        except BaseException:
            ok = False
        _s.stdout.write({token!r} + " %d %s\\n" % (i, "pass" if ok else "fail"))
        _s.stdout.flush()


def check(candidate):
    __junto_check()


check({entry})
"""
