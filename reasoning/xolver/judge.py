"""The judges of ``xolver``: code is run against the problem's own examples; other answers get an LLM's P(correct).

* :func:`judge_code`: the agent's code (:func:`junto.routers.tasks.extract_code`), after the problem's
  prompt when the reply is a bare body (:func:`junto.routers.tasks.assemble_program`), then the example
  tests (:mod:`junto.reasoning.xolver.examples`), run in :func:`junto.sandbox.run_python` (time, memory
  and file-size limits, no network, a private directory, its process group killed). score = the share of
  example tests passed; verified = every one passed and there is at least one. The problem's hidden tests
  are never seen here.
* :func:`judge_llm`: a pool deployment is asked whether the answer is correct; one generated token, its
  top log-probabilities, ``P(Yes) / (P(Yes) + P(No))`` (:func:`junto.reasoning.ets.scorers.judge_probability`,
  the house judge). verified = P ≥ the run's threshold.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from junto.errors import BackendError
from junto.reasoning.xolver.examples import Example, harness
from junto.reasoning.xolver.logic import snippet

__all__ = ["CodeVerdict", "JUDGE_PROMPT", "judge_code", "judge_llm", "judge_messages", "program_for"]


@dataclass(frozen=True)
class CodeVerdict:
    score: float
    verified: bool
    passed: int
    total: int
    #: why nothing ran or what stopped it (no code, timeout, ...), or None
    note: str | None = None


def program_for(reply: str, prompt_code: str, entry: str, tests: list[Example], token: str) -> str | None:
    """The program the sandbox runs: the reply's code (after the prompt when it is a bare body), then the
    example tests' runner. None when the reply holds no code."""
    from junto.routers.tasks import assemble_program, extract_code

    code = extract_code(reply)
    if not code.strip():
        return None
    return assemble_program(code, harness(tests, token, entry), prompt_code)


def judge_code(reply: str, prompt_code: str, entry: str, tests: list[Example], *, timeout_s: float = 10.0,
               memory_mb: int = 512) -> CodeVerdict:
    """Run the reply against ``tests`` in the sandbox (blocking: call it in a thread)."""
    from junto.sandbox import run_python

    if not tests:
        return CodeVerdict(0.0, False, 0, 0, "the problem states no example to test against")
    token = "junto-example-" + secrets.token_hex(8)
    program = program_for(reply, prompt_code, entry, tests, token)
    if program is None:
        return CodeVerdict(0.0, False, 0, len(tests), "the reply holds no code")
    res = run_python(program, timeout_s=timeout_s, memory_mb=memory_mb)
    passed: set[int] = set()
    for line in res.stdout.splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == token and parts[2] == "pass" and parts[1].isdigit():
            passed.add(int(parts[1]))
    n = len([i for i in passed if i < len(tests)])
    note = None
    if res.killed_reason:
        note = f"killed: {res.killed_reason}"
    elif not res.ok and n == 0:
        tail = (res.stderr or "").strip().splitlines()
        note = f"failed: {tail[-1][:200]}" if tail else f"exit status {res.returncode}"
    return CodeVerdict(n / len(tests), n == len(tests), n, len(tests), note)


#: the judge's prompt (written here; Xolver's judge agent writes a critique and a score, not a one-token verdict)
JUDGE_PROMPT = ("Below is a problem and a proposed solution. Check the solution's reasoning and its final "
                "answer.\n\nProblem:\n{question}\n\nProposed solution:\n{answer}\n\n"
                "Is the final answer correct? Reply with Yes or No only.")


def judge_messages(question: str, answer: str, limit: int = 2000) -> list[dict[str, str]]:
    return [{"role": "user", "content": JUDGE_PROMPT.format(question=snippet(question, limit),
                                                             answer=snippet(answer, limit))}]


async def judge_llm(client: Any, deployment: str, question: str, answer: str, *, top_logprobs: int = 10,
                    timeout: float | None = None) -> tuple[float, Any]:
    """(P(correct), usage) of one answer, from the judge's verdict token."""
    from junto.reasoning.ets.scorers import judge_probability

    r = await client.chat(deployment, judge_messages(question, answer), max_tokens=1, temperature=0.0,
                          logprobs=True, timeout=timeout, extra={"top_logprobs": top_logprobs})
    content = ((r.choices[0].logprobs or {}).get("content") or [{}]) if r.choices else [{}]
    top = content[0].get("top_logprobs") if isinstance(content[0], dict) else None
    if not top:
        raise BackendError(f"{deployment}: the judge's answer carries no top logprobs", deployment=deployment,
                           hint="judge with a llama.cpp or vLLM deployment (they return top logprobs)")
    return judge_probability(top), r.usage


async def judge_codes(replies: list[str], prompt_code: str, entry: str, tests: list[Example], *,
                      timeout_s: float, memory_mb: int) -> list[CodeVerdict]:
    """:func:`judge_code` for each reply, one at a time in a worker thread (the sandbox is CPU-bound)."""
    out = []
    for reply in replies:
        out.append(await asyncio.to_thread(judge_code, reply, prompt_code, entry, tests, timeout_s=timeout_s,
                                           memory_mb=memory_mb))
    return out
