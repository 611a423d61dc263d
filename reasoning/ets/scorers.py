"""Step scorers for ETS / REBASE: P(the latest step of a partial solution is correct), batched.

The tree search (ETS, Hooper et al., "ETS: Efficient Tree Search for Inference-Time Scaling",
arXiv 2502.13575; REBASE, Wu et al., arXiv 2408.00724) needs a process reward: a score per new step.
Both papers score steps with a process reward model (PRM) trained on math (Math-Shepherd PRM,
Wang et al., arXiv 2312.08935; Qwen2.5-Math-PRM, Zhang et al., arXiv 2501.07301). Three scorers
answer the one call :meth:`StepScorer.score`:

* ``prm``   a process reward model served by vLLM's ``POST /pooling`` (task ``token_classify``):
  the solution's steps, each followed by the PRM's step separator, go in as one conversation; vLLM's
  step pooler returns one ``[P(wrong), P(right)]`` row per separator token, and the last row's
  ``P(right)`` scores the newest step. Published recipe: Qwen2.5-Math-PRM-7B, separator
  ``<extra_0>`` (token 151651, vLLM's default step tag for ``Qwen2ForProcessRewardModel``).
  Tested here only against a loopback stub that answers in vLLM's response shape, never a real PRM.
* ``judge`` an LLM of the pool asked whether the last step is correct: one generated token, its top
  log-probabilities (≥ 10), and ``P(Yes) / (P(Yes) + P(No))`` over the token variants that read
  "yes" / "no" (any case, with or without a leading space: :func:`junto.reasoning.trimr.verifier.yes_no`).
  The prompt ends where the verdict token goes (no reasoning is generated); the items of a batch are
  concurrent requests, which llama-server's slots and vLLM's batch decode together.
* ``arith`` programmatic: every equality a step claims (``a op b = c``, chains ``a op b op c = d = …``,
  parentheses, negatives, decimals, ``a/b`` fractions) is evaluated exactly with
  :class:`fractions.Fraction` — model text is tokenized in one pass and parsed with a shunting-yard
  loop, never ``eval``-ed. 1.0 when every claim holds, ``fail`` (0.05) when one does not, and the
  neutral ``abstain`` prior (0.5) when the step claims no arithmetic.

Entry point: :func:`make_scorer` (a validated :class:`ScorerSpec`, the pool client, the pool).
"""

from __future__ import annotations

import asyncio
import math
from fractions import Fraction
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from junto.errors import BackendError, ConfigError

__all__ = ["ArithScorer", "JudgeScorer", "PrmScorer", "ScorerSpec", "StepScorer", "arith_claims", "arith_score",
           "make_scorer", "parse_scorer_spec", "prm_rows_score"]


@runtime_checkable
class StepScorer(Protocol):
    """``score(question, steps_batch)``: per item (the steps so far, the last one new), P(last step correct)."""

    name: str

    async def score(self, question: str, steps_batch: list[list[str]]) -> list[float]: ...


# ---------------------------------------------------------------------------------------------------------
# configuration


class ScorerSpec(BaseModel):
    """Which scorer, and its settings (defaults as published where a paper gives them)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["arith", "judge", "prm"] = "arith"
    #: the pool deployment that scores (judge: an instruct LLM; prm: a vLLM server running a PRM)
    deployment: str | None = None
    # arith
    hold: float = Field(1.0, ge=0.0, le=1.0, description="score when every claimed equality holds")
    fail: float = Field(0.05, ge=0.0, le=1.0, description="score when a claimed equality is false")
    abstain: float = Field(0.5, ge=0.0, le=1.0, description="neutral prior when the step claims no arithmetic")
    # judge
    top_logprobs: int = Field(10, ge=10, le=20, description="top alternatives read at the verdict token")
    max_step_chars: int = Field(1000, ge=100, description="longest step text sent (its tail is kept)")
    max_context_chars: int = Field(2000, ge=0, description="earlier steps sent at most (the nearest are kept)")
    # prm
    step_separator: str = Field("<extra_0>", min_length=1, description="the token the PRM scores after each step")
    system: str | None = Field("Please reason step by step, and put your final answer within \\boxed{}.",
                               description="the PRM's system prompt (Qwen2.5-Math-PRM's)")
    positive_index: int = Field(1, ge=0, description="column of P(step correct) in each returned row")
    timeout_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> ScorerSpec:
        if self.kind in ("judge", "prm") and not self.deployment:
            raise ValueError(f"scorer kind {self.kind!r} needs a deployment (the pool model that scores)")
        if self.kind == "arith" and not (self.fail < self.abstain < self.hold):
            raise ValueError(f"arith scores must order fail < abstain < hold (got {self.fail}, {self.abstain}, "
                             f"{self.hold})")
        return self


def parse_scorer_spec(data: Any) -> ScorerSpec:
    """A :class:`ScorerSpec` from config data (a dict, a kind name, or a spec); bad data → ConfigError."""
    if isinstance(data, ScorerSpec):
        return data
    if isinstance(data, str):
        data = {"kind": data}
    try:
        return ScorerSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "scorer"
        raise ConfigError(f"step scorer: {where}: {err.get('msg')}",
                          hint="kind is arith | judge | prm; judge and prm need deployment: <a pool deployment>",
                          param=f"scorer.{where}" if where != "scorer" else "scorer") from None


# ---------------------------------------------------------------------------------------------------------
# arith: exact checking of claimed equalities (pure)

_OPS = {"+": "+", "-": "-", "−": "-", "–": "-", "*": "*", "×": "*", "·": "*", "/": "/", "÷": "/"}
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3}
#: a number literal longer than this is not an arithmetic claim worth checking (and bounds the work)
_MAX_DIGITS = 40
#: characters skipped inside an arithmetic run (currency signs)
_SKIP = set(" \t$€£")


def _digit(c: str) -> bool:
    return "0" <= c <= "9"


def _tokens(text: str) -> list[tuple[str, Any]]:
    """One pass: ("num", (Fraction, decimals or None)), ("op", sym), ("(", None), (")", None), ("=", None),
    ("other", None) for any other text (words, punctuation), which ends an arithmetic run."""
    out: list[tuple[str, Any]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if _digit(c):
            j = i
            while j < n and _digit(text[j]):
                j += 1
            # thousands separators: 1,234,567 (a comma followed by exactly three digits)
            while (text[j:j + 1] == "," and len(text[j + 1:j + 4]) == 3 and all(_digit(x) for x in text[j + 1:j + 4])
                   and not (j + 4 < n and _digit(text[j + 4]))):
                j += 4
            dec = None
            if j + 1 < n and text[j] == "." and _digit(text[j + 1]):
                k = j + 1
                while k < n and _digit(text[k]):
                    k += 1
                dec, j = k - j - 1, k
            lit = text[i:j].replace(",", "")
            if len(lit) > _MAX_DIGITS or (j < n and (text[j].isalpha() or text[j] == "_")):
                out.append(("other", None))  # too long to be a claim, or part of a name like 3x / 2nd
                while j < n and (text[j].isalnum() or text[j] == "_"):
                    j += 1
            else:
                out.append(("num", (Fraction(int(lit.replace(".", "")), 10 ** (dec or 0)), dec)))
            i = j
        elif c in _OPS:
            out.append(("op", _OPS[c]))
            i += 1
        elif c in "()=":
            out.append((c, None))
            i += 1
        elif c in _SKIP:
            i += 1
        else:
            j = i + 1
            while j < n and not (text[j] in _OPS or text[j] in "()=" or text[j] in _SKIP or _digit(text[j])):
                j += 1
            out.append(("other", None))
            i = j
    return out


def _evaluate(toks: list[tuple[str, Any]]) -> tuple[Fraction | None, bool, int | None]:
    """Shunting-yard over one expression's tokens: (value or None if not an expression, has a binary
    operator, decimals of a bare literal or None). Division by zero → (None, True, None)."""
    vals: list[Fraction] = []
    ops: list[str] = []
    expect_operand = True
    has_op = False

    def apply(op: str) -> bool:
        if op == "neg":
            if not vals:
                return False
            vals[-1] = -vals[-1]
            return True
        if len(vals) < 2:
            return False
        b, a = vals.pop(), vals.pop()
        if op == "+":
            vals.append(a + b)
        elif op == "-":
            vals.append(a - b)
        elif op == "*":
            vals.append(a * b)
        else:
            if b == 0:
                raise ZeroDivisionError
            vals.append(a / b)
        return True

    try:
        for kind, v in toks:
            if kind == "num":
                if not expect_operand:
                    return None, has_op, None
                vals.append(v[0])
                expect_operand = False
            elif kind == "(":
                if not expect_operand:
                    return None, has_op, None
                ops.append("(")
            elif kind == ")":
                if expect_operand:
                    return None, has_op, None
                while ops and ops[-1] != "(":
                    if not apply(ops.pop()):
                        return None, has_op, None
                if not ops:
                    return None, has_op, None
                ops.pop()
            elif kind == "op":
                if expect_operand:
                    if v == "-":
                        ops.append("neg")
                    elif v == "+":
                        pass  # unary plus
                    else:
                        return None, has_op, None
                    continue
                has_op = True
                while ops and ops[-1] != "(" and _PREC[ops[-1]] >= _PREC[v]:
                    if not apply(ops.pop()):
                        return None, has_op, None
                ops.append(v)
                expect_operand = True
            else:
                return None, has_op, None
        if expect_operand:
            return None, has_op, None
        while ops:
            op = ops.pop()
            if op == "(" or not apply(op):
                return None, has_op, None
    except ZeroDivisionError:
        return None, True, None
    if len(vals) != 1:
        return None, has_op, None
    nums = [v for k, v in toks if k == "num"]
    dec = nums[0][1] if not has_op and len(nums) == 1 else None
    return vals[0], has_op, dec


def _equal(a: tuple[Fraction, bool, int | None], b: tuple[Fraction, bool, int | None]) -> bool:
    """Exact equality; a bare decimal literal is held to the precision it is written with (10/3 = 3.33)."""
    if a[0] == b[0]:
        return True
    for x, y in ((a, b), (b, a)):
        if not x[1] and x[2] and y[1]:  # x a bare decimal literal, y an expression
            return abs(x[0] - y[0]) <= Fraction(1, 2 * 10 ** x[2])
    return False


def arith_claims(text: str) -> list[tuple[str, bool]]:
    """Every equality ``text`` claims between two adjacent arithmetic expressions (at least one with an
    operator), as (a readable form, holds?). Linear in ``len(text)`` apart from the big-number arithmetic
    itself (literals are capped at 40 digits)."""
    toks = _tokens(text)
    claims: list[tuple[str, bool]] = []
    # runs of arithmetic tokens, split on '='
    run: list[list[tuple[str, Any]]] = [[]]

    def close_run() -> None:
        prev: tuple[Fraction, bool, int | None] | None = None
        prev_zero_div = False
        for seg in run:
            if not seg:
                prev = None
                continue
            val, has_op, dec = _evaluate(seg)
            if val is None and has_op and any(k == "op" and v == "/" for k, v in seg) and _balanced(seg):
                # a division by zero inside a well-formed expression: a false claim if it is claimed equal
                if prev is not None:
                    claims.append((_show(seg), False))
                prev, prev_zero_div = None, True
                continue
            if val is None:
                prev, prev_zero_div = None, False
                continue
            cur = (val, has_op, dec)
            if prev_zero_div:
                claims.append((_show(seg), False))
            elif prev is not None and (prev[1] or has_op):
                claims.append((f"{_fmt(prev[0])} = {_show(seg)}", _equal(prev, cur)))
            prev, prev_zero_div = cur, False
        run.clear()
        run.append([])

    for tok in toks:
        if tok[0] == "other":
            close_run()
        elif tok[0] == "=":
            run.append([])
        else:
            run[-1].append(tok)
    close_run()
    return claims


def _balanced(seg: list[tuple[str, Any]]) -> bool:
    depth = 0
    for k, _ in seg:
        depth += (k == "(") - (k == ")")
        if depth < 0:
            return False
    return depth == 0


def _fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _show(seg: list[tuple[str, Any]]) -> str:
    parts = []
    for k, v in seg[:40]:
        parts.append(_fmt(v[0]) if k == "num" else (v if k == "op" else k))
    return " ".join(parts) + (" …" if len(seg) > 40 else "")


def arith_score(step: str, hold: float = 1.0, fail: float = 0.05, abstain: float = 0.5) -> float:
    """``hold`` if every claim of ``step`` holds, ``fail`` if any is false, ``abstain`` if it claims none."""
    claims = arith_claims(step)
    if not claims:
        return abstain
    return hold if all(ok for _, ok in claims) else fail


class ArithScorer:
    """Programmatic arithmetic checker (no server)."""

    def __init__(self, spec: ScorerSpec):
        self.spec = spec
        self.name = "arith"

    async def score(self, question: str, steps_batch: list[list[str]]) -> list[float]:
        return [arith_score(steps[-1] if steps else "", self.spec.hold, self.spec.fail, self.spec.abstain)
                for steps in steps_batch]


# ---------------------------------------------------------------------------------------------------------
# judge: P("Yes") of one verdict token

#: the judge's prompt (written here; the ETS paper scores with a trained PRM and publishes no judge prompt)
JUDGE_PROMPT = ("Below is a problem and a partial solution written step by step. Check only the LAST step: "
                "is it correct, given the problem and the steps before it?\n\n"
                "Problem:\n{question}\n\n{earlier}Last step:\n{step}\n\n"
                "Is the last step correct? Reply with Yes or No only.")


def judge_messages(question: str, steps: list[str], max_chars: int = 1000, max_context_chars: int = 2000
                   ) -> list[dict[str, str]]:
    """The judge's one user message: the problem, the earlier steps (the nearest within ``max_context_chars``)
    and the last step (each text cut to its last ``max_chars``)."""
    def cut(s: str) -> str:
        return s if len(s) <= max_chars else "…" + s[-max_chars:]

    # the earlier steps nearest the last one, within max_context_chars (a long trace keeps its tail)
    lines: list[str] = []
    used = 0
    for i in range(len(steps) - 2, -1, -1):
        line = f"Step {i + 1}: {cut(steps[i])}\n"
        if used + len(line) > max_context_chars:
            lines.append(f"(steps 1-{i + 1} omitted)\n")
            break
        lines.append(line)
        used += len(line)
    earlier = "".join(reversed(lines))
    earlier = f"Earlier steps:\n{earlier}\n" if earlier else ""
    return [{"role": "user", "content": JUDGE_PROMPT.format(question=cut(question), earlier=earlier,
                                                              step=cut(steps[-1] if steps else ""))}]


def judge_probability(top: list[dict[str, Any]] | None) -> float:
    """P(Yes) / (P(Yes) + P(No)) from the verdict position's top logprobs; 0.5 when neither appears."""
    from junto.reasoning.trimr.verifier import yes_no

    p_yes, p_no = yes_no(top)
    return p_yes / (p_yes + p_no) if p_yes + p_no > 0 else 0.5


class JudgeScorer:
    """An LLM of the pool judges the newest step; one request per item, sent concurrently."""

    def __init__(self, spec: ScorerSpec, client: Any):
        self.spec, self.client = spec, client
        self.name = f"judge:{spec.deployment}"
        #: verdicts where neither Yes nor No was among the top tokens (scored 0.5)
        self.undecided = 0

    async def _one(self, question: str, steps: list[str]) -> float:
        r = await self.client.chat(self.spec.deployment, judge_messages(question, steps, self.spec.max_step_chars,
                                                                                 self.spec.max_context_chars),
                                   max_tokens=1, temperature=0.0, logprobs=True, timeout=self.spec.timeout_s,
                                   extra={"top_logprobs": self.spec.top_logprobs})
        content = ((r.choices[0].logprobs or {}).get("content") or [{}]) if r.choices else [{}]
        top = content[0].get("top_logprobs") if isinstance(content[0], dict) else None
        if not top:
            raise BackendError(f"{self.spec.deployment}: the judge's answer carries no top logprobs",
                               deployment=self.spec.deployment)
        p = judge_probability(top)
        if p == 0.5 and not any(str(t.get("token", "")).strip().lower() in ("yes", "no") for t in top):
            self.undecided += 1
        return p

    async def score(self, question: str, steps_batch: list[list[str]]) -> list[float]:
        return list(await asyncio.gather(*(self._one(question, s) for s in steps_batch)))


# ---------------------------------------------------------------------------------------------------------
# prm: vLLM's /pooling on a process reward model


def prm_rows_score(rows: Any, positive_index: int = 1) -> float:
    """The newest step's P(correct) from one /pooling item's ``data``: a list of per-separator rows
    ``[P(wrong), P(right)]`` (vLLM's step pooler); the last row scores the last step."""
    if not isinstance(rows, list) or not rows:
        raise ValueError("no step rows (is the step separator the PRM's step tag?)")
    last = rows[-1]
    if not isinstance(last, list) or len(last) <= positive_index:
        raise ValueError(f"a step row has no column {positive_index}: {str(last)[:80]}")
    p = last[positive_index]
    if not isinstance(p, (int, float)) or isinstance(p, bool) or math.isnan(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"P(correct) is not a probability: {p!r} (the server should apply the activation)")
    return float(p)


class PrmScorer:
    """A process reward model behind vLLM's ``POST /pooling`` (one request per item, sent concurrently)."""

    def __init__(self, spec: ScorerSpec, client: Any, dep: Any):
        self.spec, self.client, self.dep = spec, client, dep
        self.name = f"prm:{spec.deployment}"
        self._sem = asyncio.Semaphore(dep.max_concurrency)

    def body(self, question: str, steps: list[str]) -> dict[str, Any]:
        from junto.pool.backends import get_backend

        sep = self.spec.step_separator
        messages = ([{"role": "system", "content": self.spec.system}] if self.spec.system else []) + [
            {"role": "user", "content": question},
            {"role": "assistant", "content": "".join(s.replace(sep, " ") + sep for s in steps)}]
        return {"model": get_backend(self.dep.backend).request_model(self.dep), "messages": messages,
                "task": "token_classify", "add_generation_prompt": False}

    async def _one(self, question: str, steps: list[str]) -> float:
        url = f"{self.client._root(self.dep)}/pooling"
        async with self._sem:
            data = await self.client._get_json(self.dep, url, self.body(question, steps), self.spec.timeout_s)
        items = data.get("data")
        try:
            if not isinstance(items, list) or not items or not isinstance(items[0], dict):
                raise ValueError("no data items")
            return prm_rows_score(items[0].get("data"), self.spec.positive_index)
        except ValueError as exc:
            raise BackendError(f"{self.dep.name}: /pooling answer is not a PRM's step scores: {exc}",
                               hint="serve a process reward model (e.g. Qwen2.5-Math-PRM-7B) with vLLM "
                                    "--runner pooling, and set step_separator to its step tag",
                               deployment=self.dep.name) from None

    async def score(self, question: str, steps_batch: list[list[str]]) -> list[float]:
        return list(await asyncio.gather(*(self._one(question, s) for s in steps_batch)))


# ---------------------------------------------------------------------------------------------------------


def make_scorer(spec: ScorerSpec | dict | str, client: Any, pool: Any) -> StepScorer:
    """The scorer ``spec`` names, checked against ``pool`` (the deployment exists and can do what it needs)."""
    spec = parse_scorer_spec(spec)
    if spec.kind == "arith":
        return ArithScorer(spec)
    names = [d.name for d in pool.deployments]
    if spec.deployment not in names:
        raise ConfigError(f"step scorer {spec.kind!r}: deployment {spec.deployment!r} is not in pool {pool.name!r}",
                          hint=f"deployments are: {', '.join(names)}", param="scorer.deployment")
    dep = pool.deployment(spec.deployment)
    if spec.kind == "judge":
        from junto.pool.capabilities import require

        require(dep, "chat", "logprobs", "top_logprobs", purpose="the judge step scorer")
        return JudgeScorer(spec, client)
    if dep.backend not in ("vllm", "openai"):
        raise ConfigError(f"step scorer 'prm': deployment {dep.name!r} is backend {dep.backend!r}; a process "
                          "reward model is served by vLLM's /pooling endpoint",
                          hint="serve the PRM with vLLM (see configs/pools/gpu-ets.yaml) or use kind: judge",
                          param="scorer.deployment")
    return PrmScorer(spec, client, dep)
