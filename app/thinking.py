"""Reasoning parsing: a completion split into its thinking and its answer by a tag pair.

Thinking models write their reasoning between tags (``<think>…</think>`` by default; a deployment's
``thinking:`` block names its own pair) and the answer after them. This module separates the two, the
way vLLM's and DeepSeek's APIs report them (``reasoning_content`` beside ``content``):

* no tags: the whole text is the answer, unchanged (``reasoning`` is ``None``);
* ``<think>…</think>answer`` (whitespace before the open tag allowed): the reasoning is the text between
  the tags, stripped; the answer is the text after the close tag, leading whitespace dropped;
* the open tag is in the prompt (a chat template or an assistant prefill wrote it), so the text starts
  inside the thinking: the close tag alone splits (mode ``auto`` or ``inside``);
* an open tag with no close tag: the thinking was cut (``max_tokens``): all of it is reasoning, the
  answer is empty and ``truncated`` says so.

Only a leading open tag starts thinking, and only the first close tag ends it: later tags are text of
the answer. Modes: ``open`` (thinking only after a leading open tag — the default for a deployment
without a ``thinking:`` block, so a plain model's answer streams untouched), ``auto`` (``open``, or a
close tag with no open tag before it — the default for a reasoning model's deployment, see
:func:`settings_for`), ``inside`` (the text starts inside the thinking, the open tag optional).

:func:`split` splits a whole text; :class:`ThinkingStream` splits a stream chunk by chunk (tags may be
cut across chunks: ``<thi`` + ``nk>``) into ``("reasoning", text)`` and ``("content", text)`` pieces and
ends with the same :class:`Split` as :func:`split` of the joined text. Both run in linear time: plain
``str.find`` and ``str.startswith``, never a regular expression over model text; the stream holds back
at most a tag's length of text (plus trailing whitespace of the reasoning), except in mode ``auto`` while
a text that did not open with the tag has shown no close tag yet — that text may still turn out to be
reasoning, so it is held until the close tag or the end of the stream decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from junto.errors import ConfigError

DEFAULT_OPEN = "<think>"
DEFAULT_CLOSE = "</think>"

Mode = Literal["open", "auto", "inside"]
Kind = Literal["reasoning", "content"]
MODES = ("open", "auto", "inside")


@dataclass(frozen=True)
class Split:
    """A completion split into reasoning and answer.

    ``reasoning``: the thinking text (stripped), ``None`` when the text had no thinking. ``content``: the
    answer. ``truncated``: the thinking was opened but never closed (cut by ``max_tokens``): the answer is
    empty. ``cut``: where the answer starts in the raw text (0 without thinking): ``raw[:cut]`` is the
    thinking span, tags included — what reasoning tokens count.
    """

    reasoning: str | None
    content: str
    truncated: bool = False
    cut: int = 0


def _check(open_tag: str, close_tag: str, mode: str) -> None:
    if not open_tag or not close_tag:
        raise ConfigError("thinking tags must not be empty", hint="e.g. thinking: {open: '<think>', close: '</think>'}",
                          param="thinking")
    if mode not in MODES:
        raise ConfigError(f"unknown thinking mode {mode!r}", hint=f"choose among: {', '.join(MODES)}", param="mode")


def split(text: str, open_tag: str = DEFAULT_OPEN, close_tag: str = DEFAULT_CLOSE, mode: Mode = "auto") -> Split:
    """Split a whole completion into reasoning and answer (see the module doc for the cases and modes)."""
    _check(open_tag, close_tag, mode)
    if not text:
        return Split(None, "")
    stripped = text.lstrip()
    lead = len(text) - len(stripped)
    if stripped.startswith(open_tag):
        start = lead + len(open_tag)
    elif mode == "inside" or mode == "auto" and text.find(close_tag) >= 0:
        start = 0
    else:
        return Split(None, text)
    i = text.find(close_tag, start)
    if i < 0:
        return Split(text[start:].strip(), "", truncated=True, cut=len(text))
    after = i + len(close_tag)
    content = text[after:].lstrip()
    return Split(text[start:i].strip(), content, cut=len(text) - len(content))


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of ``tag`` (at most ``len(tag) - 1``)."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-k:]):
            return k
    return 0


class ThinkingStream:
    """Split a stream incrementally: ``feed(chunk)`` and ``finish()`` return ``(kind, text)`` pieces.

    The pieces, joined per kind, equal :func:`split` of the whole text: reasoning pieces join to
    ``Split.reasoning``, content pieces to ``Split.content``; :attr:`result` is that split once
    :meth:`finish` has been called.
    """

    def __init__(self, open_tag: str = DEFAULT_OPEN, close_tag: str = DEFAULT_CLOSE, mode: Mode = "auto"):
        _check(open_tag, close_tag, mode)
        self.open, self.close, self.mode = open_tag, close_tag, mode
        self._state = "start"  # start | undecided | think | lead | content | done
        self._lead: list[str] = []   # whitespace before anything else (start state)
        self._cand = ""              # the first non-whitespace text, while it may still be the open tag
        self._held: list[str] = []   # auto mode: text that may turn out to be reasoning (undecided state)
        self._tail = ""              # a possible beginning of the close tag, held back
        self._ws = ""                # reasoning whitespace held back (dropped if nothing follows it)
        self._began = False          # the reasoning has a non-whitespace character
        self._seen = 0               # characters fed
        self._thinking = False       # a thinking span was found
        self._truncated = False
        self._reasoning: list[str] = []
        self._content: list[str] = []
        self._cut = 0
        self.result: Split | None = None

    # -- output ------------------------------------------------------------------------------
    def _emit_reasoning(self, text: str, out: list[tuple[Kind, str]]) -> None:
        if not self._began:
            text = text.lstrip()
            if not text:
                return
            self._began = True
        body = text.rstrip()
        if not body:
            self._ws += text
            return
        piece = self._ws + body
        self._ws = text[len(body):]
        self._reasoning.append(piece)
        out.append(("reasoning", piece))

    def _emit_content(self, text: str, out: list[tuple[Kind, str]]) -> None:
        if self._state == "lead":
            stripped = text.lstrip()
            self._cut += len(text) - len(stripped)
            text = stripped
            if not text:
                return
            self._state = "content"
        if text:
            self._content.append(text)
            out.append(("content", text))

    # -- states ------------------------------------------------------------------------------
    def _think(self, text: str, out: list[tuple[Kind, str]]) -> None:
        """In the thinking: look for the close tag in held tail + ``text``."""
        buf = self._tail + text
        i = buf.find(self.close)
        if i >= 0:
            self._tail = ""
            self._emit_reasoning(buf[:i], out)
            self._ws = ""
            rest = buf[i + len(self.close):]
            self._cut = self._seen - len(rest)
            self._state = "lead"
            self._emit_content(rest, out)
            return
        k = _partial_suffix(buf, self.close)
        self._tail = buf[len(buf) - k:] if k else ""
        self._emit_reasoning(buf[:len(buf) - k], out)

    def _undecided(self, text: str, out: list[tuple[Kind, str]]) -> None:
        """Auto mode, no leading open tag: hold everything until a close tag (reasoning) or the end (answer)."""
        buf = self._tail + text
        i = buf.find(self.close)
        if i >= 0:
            self._thinking = True
            self._state = "think"
            self._tail = ""
            held, self._held = "".join(self._held), []
            self._think(held + buf, out)
            return
        k = _partial_suffix(buf, self.close)
        self._held.append(buf[:len(buf) - k])
        self._tail = buf[len(buf) - k:] if k else ""

    def _start(self, text: str, out: list[tuple[Kind, str]]) -> None:
        if not self._cand:
            stripped = text.lstrip()
            self._lead.append(text[:len(text) - len(stripped)])
            text = stripped
            if not text:
                return
        self._cand += text
        cand = self._cand
        if len(cand) < len(self.open) and self.open.startswith(cand):
            return  # may still become the open tag
        lead = "".join(self._lead)
        self._lead, self._cand = [], ""
        if cand.startswith(self.open):
            self._thinking = True
            self._state = "think"
            self._think(cand[len(self.open):], out)
        elif self.mode == "inside":
            self._thinking = True
            self._state = "think"
            self._think(lead + cand, out)
        elif self.mode == "auto":
            self._state = "undecided"
            self._undecided(lead + cand, out)
        else:
            self._state = "content"
            self._emit_content(lead + cand, out)

    # -- API ---------------------------------------------------------------------------------
    def feed(self, chunk: str) -> list[tuple[Kind, str]]:
        """The pieces ``chunk`` releases (possibly none: text that may be part of a tag is held)."""
        if self._state == "done":
            raise RuntimeError("ThinkingStream.feed() after finish()")
        out: list[tuple[Kind, str]] = []
        if not chunk:
            return out
        self._seen += len(chunk)
        state = self._state
        if state == "start":
            self._start(chunk, out)
        elif state == "undecided":
            self._undecided(chunk, out)
        elif state == "think":
            self._think(chunk, out)
        else:
            self._emit_content(chunk, out)
        return _merge(out)

    def finish(self) -> list[tuple[Kind, str]]:
        """The held text, at the end of the stream; sets :attr:`result`."""
        if self._state == "done":
            return []
        out: list[tuple[Kind, str]] = []
        state = self._state
        if state == "start":
            if self.mode == "inside" and self._cand:  # began like the open tag but never completed it
                self._thinking = True
                self._state = "think"
                self._think("".join(self._lead) + self._cand, out)
                state = "think"
            else:
                self._state = "content"
                self._emit_content("".join(self._lead) + self._cand, out)
                if self.mode == "inside" and self._seen:
                    self._thinking = True  # whitespace only, inside the thinking
                    self._truncated = True
                    self._cut = self._seen
                    self._content.clear()
                    out.clear()
        elif state == "undecided":
            self._state = "content"
            self._emit_content("".join(self._held) + self._tail, out)
            self._held, self._tail = [], ""
        if state == "think":
            self._emit_reasoning(self._tail, out)
            self._tail = ""
            self._truncated = True
            self._cut = self._seen
        self._state = "done"
        reasoning = "".join(self._reasoning) if self._thinking else None
        self.result = Split(reasoning, "".join(self._content), self._truncated, self._cut if self._thinking else 0)
        return _merge(out)


def _merge(pieces: list[tuple[Kind, str]]) -> list[tuple[Kind, str]]:
    out: list[tuple[Kind, str]] = []
    for kind, text in pieces:
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


def split_stream(chunks: Iterable[str], open_tag: str = DEFAULT_OPEN, close_tag: str = DEFAULT_CLOSE,
                 mode: Mode = "auto") -> tuple[list[tuple[Kind, str]], Split]:
    """All pieces of a chunked text and its split (for tests and offline use)."""
    s = ThinkingStream(open_tag, close_tag, mode)
    pieces: list[tuple[Kind, str]] = []
    for c in chunks:
        pieces += s.feed(c)
    pieces += s.finish()
    assert s.result is not None
    return pieces, s.result


# -- deployments -----------------------------------------------------------------------------------

def settings_for(deployment: Any) -> tuple[str, str, Mode]:
    """The tags and mode for a pool deployment.

    No ``thinking:`` block: the default tags in mode ``open`` (a plain model's answer is never held back).
    A block with a ``prompt`` (an instruct model prompted to think: it writes the open tag itself): its tags
    in mode ``open``. A block with ``starts_inside`` (the chat template writes the open tag): mode
    ``inside``, so the stream's thinking flows as it comes. Otherwise (a reasoning model that may or may
    not open the thinking itself): its tags in mode ``auto``.
    """
    t = getattr(deployment, "thinking", None)
    if t is None:
        return DEFAULT_OPEN, DEFAULT_CLOSE, "open"
    if getattr(t, "starts_inside", False):
        return t.open, t.close, "inside"
    return t.open, t.close, "open" if t.prompt else "auto"


def split_for(deployment: Any, text: str) -> Split:
    o, c, m = settings_for(deployment)
    return split(text, o, c, m)


def stream_for(deployment: Any) -> ThinkingStream:
    o, c, m = settings_for(deployment)
    return ThinkingStream(o, c, m)


def estimate_tokens(splits: Split | list[Split], raws: str | list[str], completion_tokens: int) -> int:
    """Reasoning tokens estimated from the completion's token count, in proportion to the thinking spans'
    share of the raw text (where the deployment cannot tokenize). Several choices of one request: lists."""
    splits = [splits] if isinstance(splits, Split) else splits
    raws = [raws] if isinstance(raws, str) else raws
    total = sum(len(r) for r in raws)
    if not total:
        return 0
    return min(completion_tokens, round(completion_tokens * sum(s.cut for s in splits) / total))


def can_tokenize(client: Any, deployment: str) -> bool:
    """Whether ``deployment`` declares the ``tokenize`` capability (``junto.pool.capabilities``)."""
    if not hasattr(client, "tokenize"):
        return False
    try:
        from junto.pool.capabilities import capabilities
    except ImportError:
        return False
    caps = capabilities(client.pool.deployment(deployment))
    return bool(caps.get("tokenize")) if isinstance(caps, dict) else "tokenize" in caps


async def reasoning_tokens(client: Any, deployment: str, splits: Split | list[Split], raws: str | list[str],
                           completion_tokens: int) -> tuple[int | None, bool]:
    """``(reasoning_tokens, estimated)`` of a request's completions: ``None`` when none thought; exact (the
    deployment's tokenizer, ``PoolClient.tokenize``, on each thinking span ``raw[:cut]``) where the deployment
    has the ``tokenize`` capability, else :func:`estimate_tokens` (``estimated`` is then True)."""
    splits = [splits] if isinstance(splits, Split) else splits
    raws = [raws] if isinstance(raws, str) else raws
    if all(s.reasoning is None for s in splits):
        return None, False
    if can_tokenize(client, deployment):
        from junto.errors import BackendError

        try:
            n = 0
            for s, raw in zip(splits, raws):
                if s.cut:
                    n += len(await client.tokenize(deployment, raw[:s.cut]))
            return (min(n, completion_tokens) if completion_tokens else n), False
        except (BackendError, NotImplementedError):
            pass  # the count is a report, not worth failing the answer for: estimate
    return estimate_tokens(splits, raws, completion_tokens), True


__all__ = [
    "DEFAULT_CLOSE",
    "DEFAULT_OPEN",
    "MODES",
    "Split",
    "ThinkingStream",
    "can_tokenize",
    "estimate_tokens",
    "reasoning_tokens",
    "settings_for",
    "split",
    "split_for",
    "split_stream",
    "stream_for",
]
