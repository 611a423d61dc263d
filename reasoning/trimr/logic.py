"""TrimR's pure logic: thought segmentation, answer checks, the overthinking / underthinking /
repetition decisions. No I/O: the streaming strategy (:mod:`junto.reasoning.trimr.graph`) and the
offline replay (:mod:`junto.reasoning.trimr.offline`) both drive these same objects.

Everything here is linear in the text it is fed: the segmenter scans each character a bounded
number of times (a pattern without nested quantifiers, searched only over the unscanned tail), the
repetition detector keeps one rolling hash over a fixed window of word (or token id) hashes, and
answers are read with :mod:`junto.answers`, which is linear by construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from junto.answers import AnswerKind, answer_span, canonical, equivalent, extract

#: words that open a new thought when they start a sentence or a line (TrimR, arXiv 2505.17155, §3)
MARKERS: tuple[str, ...] = ("Wait", "But", "Alternatively", "Hmm")

#: characters a boundary match may need to see after itself before it is certain (marker + word end)
_HOLD = max(len(m) for m in MARKERS) + 12


def _boundary_pattern(markers: Sequence[str]) -> re.Pattern[str]:
    words = "|".join(re.escape(m) for m in markers)
    # a blank line, or a marker word opening a sentence (after . ! ? and spaces) or a line;
    # every quantifier is bounded and none is nested: one search is linear in what it scans
    return re.compile(r"\n[ \t]{0,8}\n|(?:(?<=[.!?])[ \t]{1,4}|\n[ \t]{0,8})(?=(?:" + words + r")\b)")


_DEFAULT_PATTERN = _boundary_pattern(MARKERS)


class Segmenter:
    """Cuts a stream of thinking text into thoughts, incrementally.

    :meth:`feed` takes the next piece of text and returns the thoughts it completed (stripped, never
    empty); :meth:`flush`, at the end of the text, returns the rest. A boundary close to the end of what was
    fed so far is held back until enough text follows to be sure of it ("But" vs "Butter").
    """

    def __init__(self, markers: Sequence[str] = MARKERS):
        self._pattern = _DEFAULT_PATTERN if tuple(markers) == MARKERS else _boundary_pattern(markers)
        self._buf: list[str] = []
        self._text = ""
        self._start = 0      # where the current thought starts
        self._scan = 0       # where the next search starts
        self.count = 0       # thoughts returned so far

    @property
    def text(self) -> str:
        return self._text

    def feed(self, piece: str) -> list[str]:
        if not piece:
            return []
        self._text += piece
        return self._cut(len(self._text) - _HOLD)

    def _cut(self, limit: int) -> list[str]:
        out: list[str] = []
        text = self._text
        while True:
            m = self._pattern.search(text, self._scan)
            if m is None or m.end() > limit:
                # nothing certain yet; a boundary not found now ends in the held-back tail, so it
                # starts less than 2 × _HOLD before the end: the next search starts there
                self._scan = max(self._scan, len(text) - 2 * _HOLD)
                break
            thought = text[self._start:m.start()].strip()
            self._start = self._scan = m.end()  # every match is non-empty
            if thought:
                out.append(thought)
        self.count += len(out)
        # drop what no later thought needs (keeps memory bounded by the current thought)
        if self._start > 4096:
            self._text = text[self._start:]
            self._scan -= self._start
            self._start = 0
        return out

    def flush(self) -> list[str]:
        """The thoughts left at the end of the text (the held-back boundaries are now certain); resets."""
        out = self._cut(len(self._text))
        last = self._text[self._start:].strip()
        self._text, self._start, self._scan = "", 0, 0
        if last:
            self.count += 1
            out.append(last)
        return out


def split_thoughts(text: str, markers: Sequence[str] = MARKERS) -> list[str]:
    """All thoughts of a complete thinking text (what :class:`Segmenter` yields, fed at once)."""
    seg = Segmenter(markers)
    return seg.feed(text) + seg.flush()


# -- answer checks ------------------------------------------------------------------------------

Verdict = Literal["answer", "none", "unsure"]


@dataclass(frozen=True)
class Check:
    """What the answer module reads from one thought.

    ``verdict``: ``"answer"`` — the thought states an answer (a ``\\boxed{}`` or "answer is …");
    ``"none"`` — it cannot have reached one (no number, no statement); ``"unsure"`` — it has numbers
    but states nothing: whether it *concluded* is the verifier's call (without one it counts as no
    answer: its last value may be a step's). ``key``: the answer's (or last value's) vote key.
    """

    verdict: Verdict
    key: str | None


_DIGIT = re.compile(r"\d")


def check_thought(thought: str, kind: AnswerKind = "auto") -> Check:
    """Read the answer a thought reached, with :mod:`junto.answers` only (linear time)."""
    if answer_span(thought) is not None:
        key = canonical(extract(thought, kind), kind)
        if key is not None:
            return Check("answer", key)
    if _DIGIT.search(thought) is None:
        return Check("none", None)
    key = canonical(extract(thought, "number" if kind == "auto" else kind), kind)
    return Check("unsure", key) if key is not None else Check("none", None)


# -- repetition ---------------------------------------------------------------------------------

_MOD = (1 << 61) - 1
_BASE = 1_000_003
_WORD = re.compile(r"\S{1,64}")


class RepetitionDetector:
    """Catches a decoding loop: the same ``window`` consecutive items (token ids, or word hashes)
    occurring ``repeats`` times. A Rabin–Karp rolling hash over the window: O(1) per item; a hash
    match is confirmed on the items themselves, so a collision never triggers it."""

    def __init__(self, window: int = 24, repeats: int = 3):
        if window < 1 or repeats < 2:
            raise ValueError("window must be ≥ 1 and repeats ≥ 2")
        self.window, self.repeats = window, repeats
        self._items: list[int] = []
        self._hash = 0
        self._top = pow(_BASE, window - 1, _MOD)
        self._seen: dict[int, list[int]] = {}  # hash → end positions of windows with that hash
        self._partial = ""                     # text fed without a word end yet
        self.hit: int | None = None            # position (item count) where the loop was caught

    def feed_ids(self, ids: Iterable[int]) -> bool:
        """Add token ids (or any ints); ``True`` once a loop has been seen."""
        for x in ids:
            if self.hit is not None:
                return True
            self._push(int(x) % _MOD)
        return self.hit is not None

    def feed_text(self, piece: str) -> bool:
        """Add text; words (whitespace-separated, each cut at 64 characters) are the items."""
        text = self._partial + piece
        cut = len(text)
        while cut > 0 and not text[cut - 1].isspace():
            cut -= 1
        self._partial = text[cut:]
        if len(self._partial) > 64:  # a "word" this long is no word: count it in pieces
            cut, self._partial = len(text), ""
        return self.feed_ids(hash(w) for w in _WORD.findall(text, 0, cut))

    def _push(self, x: int) -> None:
        items = self._items
        items.append(x)
        n = len(items)
        if n > self.window:
            self._hash = (self._hash - items[n - 1 - self.window] * self._top) % _MOD
        self._hash = (self._hash * _BASE + x) % _MOD
        if n < self.window:
            return
        ends = self._seen.setdefault(self._hash, [])
        w = self.window
        same = [e for e in ends if items[e - w:e] == items[n - w:n]]
        if len(same) + 1 >= self.repeats and n - same[0] >= w:
            self.hit = n
        ends.append(n)


# -- the decision state machine -----------------------------------------------------------------

Decision = Literal["continue", "overthinking", "underthinking", "repetition"]


@dataclass
class Observation:
    """One thought as the monitor saw it."""

    index: int
    tokens: int           # thinking tokens spent when the thought ended
    verdict: Verdict
    key: str | None       # the answer the thought reached (None: none)
    same_as_previous: bool
    streak: int           # consecutive thoughts with equivalent answers, this one included
    by: str               # "answers" (the answer module decided) or "verifier"


@dataclass
class Monitor:
    """TrimR's decisions over a thinking stream, one thought at a time.

    * **overthinking**: ``consecutive`` (M = 2) thoughts in a row reach equivalent answers → stop
      thinking, close with a short prompt that leads to the final answer;
    * **underthinking**: ``under_fraction`` (50 %) of ``budget`` thinking tokens spent, or
      ``max_thoughts`` (20) thoughts, without convergence → close the thinking and ask for the answer;
    * **repetition**: a decoding loop (:class:`RepetitionDetector`) → close and ask for the answer.
    """

    budget: int
    consecutive: int = 2
    under_fraction: float = 0.5
    max_thoughts: int = 20
    kind: AnswerKind = "auto"
    observations: list[Observation] = field(default_factory=list)
    decision: Decision = "continue"
    _last_key: str | None = None
    _streak: int = 0

    def observe(self, verdict: Verdict, key: str | None, tokens: int, *, by: str = "answers") -> Decision:
        """Record the next thought's check (``key`` only counts when ``verdict`` is ``"answer"``)."""
        if self.decision != "continue":
            return self.decision
        key = key if verdict == "answer" else None
        same = key is not None and self._last_key is not None and equivalent(key, self._last_key, self.kind)
        self._streak = self._streak + 1 if same else (1 if key is not None else 0)
        if key is not None:
            self._last_key = key
        self.observations.append(Observation(len(self.observations), tokens, verdict, key, same, self._streak, by))
        if self._streak >= self.consecutive:
            self.decision = "overthinking"
        elif self.out_of_budget(tokens) or len(self.observations) >= self.max_thoughts:
            self.decision = "underthinking"
        return self.decision

    def out_of_budget(self, tokens: int) -> bool:
        """Has the thinking spent ``under_fraction`` of its budget (checked between thoughts too)?"""
        return tokens >= self.under_fraction * self.budget

    def trip(self, decision: Decision) -> Decision:
        """Force a decision from outside (repetition, budget reached mid-thought)."""
        if self.decision == "continue":
            self.decision = decision
        return self.decision

    @property
    def answer(self) -> str | None:
        """The last answer a thought reached."""
        return self._last_key

    @property
    def converged_at(self) -> int | None:
        """Index of the thought where the answers converged (overthinking), else ``None``."""
        return self.observations[-1].index if self.decision == "overthinking" else None


#: the short texts that close the thinking after a decision (TrimR's "closing prompt")
CLOSING: dict[str, str] = {
    "overthinking": "\nI have checked this and the answer stays the same, so no more checking is needed.\n",
    "underthinking": "\nI am running out of time; I must give my best answer now.\n",
    "repetition": "\nI am repeating myself; I must stop and give my answer now.\n",
}


__all__ = ["MARKERS", "Segmenter", "split_thoughts", "Check", "check_thought", "RepetitionDetector", "Monitor",
           "Observation", "Decision", "CLOSING"]
