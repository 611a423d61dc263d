"""TrimR's verifier: does a thought reach a final answer? P(Yes) vs P(No) of one generated token.

The answer module (:func:`junto.reasoning.trimr.logic.check_thought`) decides first; the verifier
is asked only about the thoughts it is unsure of. A request is prefill-only: the question, the
thought and the yes/no question are prefilled, one token is generated with its top logprobs, and
``P(Yes)`` and ``P(No)`` are the summed probabilities of the top tokens that read "yes" / "no".

One :class:`Verifier` serves every reasoner of a client that names the same deployment
(:func:`verifier_for`): checks go onto one queue, and one worker task sends them to the server as
they come, at most the deployment's ``max_concurrency`` at once (llama-server's parallel slots and
vLLM batch them). A caller awaits its own future; the decoding of its reasoner never waits on it.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from dataclasses import dataclass
from typing import Any

from junto.errors import BackendError
from junto.pool.client import PoolClient

#: the verifier's prompt (TrimR, arXiv 2505.17155: a small instruct model judges whether a thought
#: reached an answer; written here, the paper publishes none)
PROMPT = ("Below is a math question and one step of someone's reasoning about it.\n\n"
          "Question: {question}\n\nReasoning step: {thought}\n\n"
          "Does this reasoning step arrive at a final answer to the question (not just an intermediate "
          "value)? Reply with Yes or No only.")

#: longest thought sent to the verifier (its tail is what states an answer)
MAX_THOUGHT_CHARS = 1500


@dataclass(frozen=True)
class Judgement:
    yes: bool
    p_yes: float
    p_no: float
    latency_s: float
    prompt_tokens: int


def yes_no(top: list[dict[str, Any]] | None) -> tuple[float, float]:
    """P(Yes), P(No) from one position's ``top_logprobs`` list (OpenAI shape)."""
    p_yes = p_no = 0.0
    for t in top or []:
        tok = str(t.get("token", "")).strip().strip(".,!").lower()
        lp = t.get("logprob")
        if not isinstance(lp, (int, float)) or math.isnan(lp):
            continue
        if tok == "yes":
            p_yes += math.exp(lp)
        elif tok == "no":
            p_no += math.exp(lp)
    return p_yes, p_no


def messages_for(question: str, thought: str) -> list[dict[str, str]]:
    if len(thought) > MAX_THOUGHT_CHARS:
        thought = "…" + thought[-MAX_THOUGHT_CHARS:]
    return [{"role": "user", "content": PROMPT.format(question=question, thought=thought)}]


class Verifier:
    """A shared queue of answer checks for one verifier deployment of one client."""

    def __init__(self, client: PoolClient, deployment: str, top_logprobs: int = 10):
        self.client, self.deployment, self.top_logprobs = client, deployment, top_logprobs
        self._queue: asyncio.Queue = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        dep = client.pool.deployment(deployment)
        self._slots = asyncio.Semaphore(dep.max_concurrency)
        self.requests = 0
        self.max_in_flight = 0

    async def judge(self, question: str, thought: str) -> Judgement:
        """Queue one check and wait for its verdict (raises :class:`BackendError` when the call fails)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._queue.put_nowait((question, thought, fut))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work())
        return await fut

    async def _work(self) -> None:
        while True:
            try:
                question, thought, fut = await asyncio.wait_for(self._queue.get(), timeout=5.0)
            except asyncio.TimeoutError:
                return  # idle: the next judge() starts a new worker
            if fut.cancelled():
                continue
            await self._slots.acquire()
            task = asyncio.get_running_loop().create_task(self._one(question, thought, fut))
            # the reasoner stopped waiting (its thinking ended): the request is dropped, its slot freed
            fut.add_done_callback(lambda f, t=task: t.cancel() if f.cancelled() else None)
            self._running.add(task)
            self.max_in_flight = max(self.max_in_flight, len(self._running))
            task.add_done_callback(self._running.discard)

    async def _one(self, question: str, thought: str, fut: asyncio.Future) -> None:
        try:
            self.requests += 1
            r = await self.client.chat(self.deployment, messages_for(question, thought), max_tokens=1,
                                       temperature=0.0, logprobs=True, extra={"top_logprobs": self.top_logprobs})
            content = ((r.choices[0].logprobs or {}).get("content") or [{}]) if r.choices else [{}]
            p_yes, p_no = yes_no(content[0].get("top_logprobs"))
            if not fut.done():
                fut.set_result(Judgement(p_yes > p_no, p_yes, p_no, r.latency_s, r.usage.prompt_tokens))
        except BackendError as exc:
            if not fut.done():
                fut.set_exception(exc)
        except asyncio.CancelledError:
            if not fut.done():
                fut.cancel()
            raise
        finally:
            self._slots.release()


_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def verifier_for(client: PoolClient, deployment: str) -> Verifier:
    """The one :class:`Verifier` of ``client`` for ``deployment`` (created on first use)."""
    per_client = _SHARED.setdefault(client, {})
    v = per_client.get(deployment)
    if v is None:
        v = per_client[deployment] = Verifier(client, deployment)
    return v


__all__ = ["PROMPT", "Judgement", "Verifier", "verifier_for", "yes_no", "messages_for"]
