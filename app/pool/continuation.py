"""Streams that stop and continue: one assistant turn grown in segments on one deployment.

``prefill + generated + appended + generated …``: the caller streams a segment, stops it where it
chooses (a stop string, a callback over the segment's text, or :meth:`Continuation.cut` from beside
the stream), appends text of its own, and streams the next segment. Every segment is a raw
``/v1/completions`` stream of the whole prompt so far (the conversation rendered with the model's own
chat template, the assistant turn left open: :mod:`junto.pool.chat_template`); the server's prompt
cache makes resending it cheap, and each segment records the cached tokens the server reported.

Token counts are exact: a segment that finished by itself takes the server's usage; a cut one counts
the tokens received (the stream is asked for per-token logprobs, so every token arrives as its own
entry) and its prompt through the server's ``/tokenize``. What a server decodes between the cut and
noticing the closed connection is not counted (it is never received).

After a cut on llama-server the next segment waits (at most 2 s, polling ``/slots``) until the server
has dropped the abandoned request, so that it lands in the same slot and reuses its cached prompt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from junto.errors import BackendError
from junto.pool.capabilities import require
from junto.pool.client import PoolClient
from junto.pool.types import StreamDelta, Usage

Message = Mapping[str, Any]

#: the longest wait for llama-server to cancel a cut stream before the next segment is sent
_SETTLE_S = 2.0


@dataclass
class Segment:
    """One generated stretch of the assistant turn."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    #: prompt tokens the server took from its cache (None: the server did not say)
    cached_tokens: int | None
    #: "stop" | "length" | "cut" (stopped by the caller: stop_at, a stop string, or cut())
    finish_reason: str | None


def _cached_tokens(chunk: dict[str, Any]) -> int | None:
    """Prompt tokens the server took from its cache: OpenAI's ``usage.prompt_tokens_details.cached_tokens``
    (vLLM with prefix caching, recent llama-server), else llama-server's ``timings.cache_n``."""
    usage = chunk.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens_details"), dict):
        v = usage["prompt_tokens_details"].get("cached_tokens")
        if isinstance(v, int):
            return v
    timings = chunk.get("timings")
    if isinstance(timings, dict) and isinstance(timings.get("cache_n"), int):
        return timings["cache_n"]
    return None


def _token_count(choice: dict[str, Any]) -> int | None:
    """Tokens carried by one stream chunk's choice, from its per-token logprobs: llama-server's
    ``logprobs.content`` list, or the legacy completions shape's ``logprobs.tokens`` (vLLM)."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    for key in ("content", "tokens"):
        if isinstance(lp.get(key), list):
            return len(lp[key])
    return None


class Continuation:
    """A generation on one deployment that the caller can stop at a point it chooses, extend with text of
    its own, and continue — the assistant turn grows: prefill + generated + appended + generated …

    ``params``: sampling fields as for :meth:`PoolClient.chat` (temperature, top_p, seed, extra…).
    Needs capability ``completions`` and ``logprobs`` (the exact per-token count), and ``prefill`` once
    the turn is non-empty.
    """

    def __init__(self, client: PoolClient, deployment: str, messages: Sequence[Message], *, prefill: str = "",
                 **params: Any):
        self.client = client
        self.dep = client.pool.deployment(deployment) if isinstance(deployment, str) else deployment
        require(self.dep, "completions", "logprobs", purpose="a stop-and-continue stream")
        if prefill:
            require(self.dep, "prefill", purpose="a stop-and-continue stream with a prefill")
        for bad in ("max_tokens", "stop", "n", "stream", "logprobs"):
            if bad in params:
                raise ValueError(f"Continuation takes {bad!r} per segment (stream()), not for the whole turn")
        self.messages = [dict(m) for m in messages]
        self.params = params
        self._parts: list[str] = [prefill] if prefill else []
        self._segments: list[Segment] = []
        self._cut = False
        self._streaming = False
        self._live = 0
        #: prompt length of a segment just cut, until the server has let go of it (_settle)
        self._pending_settle: tuple[int, int] | None = None

    # -- state ------------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The assistant turn so far: prefill, generated and appended text in order."""
        return "".join(self._parts)

    @property
    def segments(self) -> list[Segment]:
        return list(self._segments)

    @property
    def usage(self) -> Usage:
        """Exact usage over all segments (each segment's prompt tokens plus its generated tokens)."""
        return Usage(sum(s.prompt_tokens for s in self._segments), sum(s.completion_tokens for s in self._segments))

    @property
    def live_tokens(self) -> int:
        """Tokens generated so far in the segment streaming now (exact: one per token received), else 0."""
        return self._live if self._streaming else 0

    def cut(self) -> None:
        """Stop the segment being streamed after the token in hand (safe to call from another task)."""
        if self._streaming:
            self._cut = True

    def append(self, text: str) -> None:
        """Junto's own text joins the assistant turn (the next segment continues after it)."""
        if self._streaming:
            raise RuntimeError("append() while a segment is streaming: end it with cut() or stop_at (a bare "
                               "`break` leaves the stream open until it is collected; use contextlib.aclosing)")
        if text:
            if not self.text:
                require(self.dep, "prefill", purpose="a stop-and-continue stream with appended text")
            self._parts.append(text)

    async def prompt(self) -> str | list[int]:
        """The raw prompt the next segment continues: the conversation with the assistant turn left open
        (text rendered by junto, or token ids rendered by a vLLM server: :meth:`PoolClient.completion_prompt`)."""
        turn = self.text
        if not turn:
            return await self.client.completion_prompt(self.dep, self.messages, add_generation_prompt=True)
        return await self.client.completion_prompt(
            self.dep, [*self.messages, {"role": "assistant", "content": turn}], continue_final=True)

    # -- streaming --------------------------------------------------------------------------------
    async def stream(self, *, max_tokens: int, stop_at: Callable[[str], int | None] | None = None,
                     stop: list[str] | None = None) -> AsyncIterator[StreamDelta]:
        """Stream the next segment's text.

        After each token ``stop_at(text_of_this_segment_so_far)`` is called: an int is where to cut (the
        text beyond it is dropped and the connection closed so the server stops decoding). The segment
        also ends at ``max_tokens``, at a ``stop`` string (not included), at the model's end of turn, or
        when :meth:`cut` is called from elsewhere. Leaving the loop early counts as a cut too.
        ``completion_tokens`` is the server's count when the segment finished by itself (a stop string's
        tokens included), else the tokens received, including one a ``stop_at`` cut lands inside.
        """
        if self._streaming:
            raise RuntimeError("a segment is already streaming on this Continuation")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1 (got {max_tokens})")
        await self._settle()
        prompt = await self.prompt()
        params = dict(self.params, max_tokens=max_tokens, stop=stop or None)
        body = self.client._completion_body(self.dep, prompt, params, n=1, stream=True, logprobs=1)
        self._streaming, self._cut, self._live = True, False, 0
        seg_text = ""
        tokens = 0
        finish: str | None = None
        prompt_tokens: int | None = None
        served: int | None = None  # the server's own count of generated tokens, when its usage arrives
        cached: int | None = None
        chunks = self.client._stream_chunks(self.dep, "/completions", body, None)
        failed = False
        try:
            async for chunk in chunks:
                if chunk.get("_ended"):
                    raise BackendError(f"{self.dep.name}: the stream ended after {tokens} tokens without finishing",
                                       hint="the server may have crashed: `junto pool status` shows it",
                                       deployment=self.dep.name, retryable=tokens == 0)
                usage = chunk.get("usage")
                if isinstance(usage, dict) and usage.get("prompt_tokens") is not None:
                    prompt_tokens = int(usage["prompt_tokens"])
                    served = usage.get("completion_tokens")
                    cached = _cached_tokens(chunk)
                elif cached is None:
                    cached = _cached_tokens(chunk)
                cut_here = False
                for c in chunk.get("choices") or []:
                    if c.get("index", 0) != 0:
                        continue
                    delta = c.get("text") or ""
                    n_tok = _token_count(c)
                    tokens += n_tok if n_tok is not None else (1 if delta else 0)
                    self._live = tokens
                    if c.get("finish_reason"):
                        finish = c["finish_reason"]
                    if not delta:
                        continue
                    candidate = seg_text + delta
                    at = stop_at(candidate) if stop_at is not None else None
                    if at is not None:
                        at = max(0, min(int(at), len(candidate)))
                        piece = candidate[len(seg_text):at]
                        seg_text = candidate[:at]
                        cut_here = True
                        if piece:
                            yield StreamDelta(piece)
                        break
                    seg_text = candidate
                    yield StreamDelta(delta)
                    if self._cut:
                        cut_here = True
                        break
                if cut_here or self._cut:
                    finish = "cut"
                    break
        except GeneratorExit:  # the caller closed the stream (aclosing, or a break once collected)
            finish = "cut"
            raise
        except BaseException:
            failed = True
            raise
        finally:
            await chunks.aclose()  # closes the connection when cut: the server stops decoding
            if finish is None:
                finish = "cut"
            if prompt_tokens is None and not failed:  # a cut stream sends no usage: the server's tokenizer counts
                prompt_tokens = await self._count_prompt(prompt)
            self._streaming, self._cut = False, False
            if not failed:
                if seg_text:
                    self._parts.append(seg_text)
                # a finished stream's usage is the server's count (it includes a stop string's tokens, which
                # are never sent); a cut one's is the count of tokens received
                count = int(served) if isinstance(served, int) and finish != "cut" else tokens
                self._segments.append(Segment(seg_text, prompt_tokens or 0, count, cached, finish))
                if finish == "cut":
                    self._pending_settle = (prompt_tokens or 0, (prompt_tokens or 0) + tokens + 1)

    async def _settle(self) -> None:
        """After a cut on llama-server, wait until the server has cancelled the abandoned request (it notices
        the closed connection only when it next writes a token). Until then that request holds its slot, and
        the next segment would land in another slot, without the cached prompt. Polls ``GET /slots`` for a
        busy slot holding as many tokens as the cut request had (its prompt, and what it generated), for at
        most ``_SETTLE_S``."""
        span, self._pending_settle = self._pending_settle, None
        if span is None or self.dep.backend != "llamacpp" \
                or getattr(self.dep.launch, "server", "llama-server") != "llama-server":
            return
        url = f"{self.client._root(self.dep)}/slots"
        deadline = time.monotonic() + _SETTLE_S
        while time.monotonic() < deadline:
            try:
                slots = await self.client._get_json(self.dep, url, None, None, expect=list)
            except BackendError:
                return  # /slots turned off (--no-slots): the next segment may miss the cache, nothing worse
            lo, hi = span
            if not any(isinstance(s, dict) and s.get("is_processing")
                       and isinstance(s.get("n_prompt_tokens"), int) and lo <= s["n_prompt_tokens"] <= hi
                       for s in slots):
                return
            await asyncio.sleep(0.005)

    async def _count_prompt(self, prompt: str | list[int]) -> int:
        if isinstance(prompt, list):
            return len(prompt)
        require(self.dep, "tokenize", purpose="counting a cut stream's prompt tokens")
        return len(await self.client.tokenize(self.dep, prompt, add_special=True))
