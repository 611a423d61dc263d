"""Voting, the tie rule and early stopping: pure functions over plain data.

A *vote* is one sample's answer key (``None`` when extraction failed) with a weight (1, or the
sample's mean-token-probability when weighting by logprobs). Invalid answers never get a vote.

**Tie rule** (deterministic, documented): among the answers with the highest total weight, the one
whose *first* sample came earliest wins. Samples are numbered in the order the strategy asked for
them (model 1's before model 2's in ModelSwitch), so a tie goes to the answer the preferred
model gave first; the result never depends on dict order or on which request finished first.

**Early stopping** (:func:`stop_reason`):

* ``unbeatable``: stop once the leader cannot be caught even if every remaining sample went to the
  runner-up. This never changes the final answer of plain (unweighted) voting; it only saves samples.
* ``beta``: Adaptive-Consistency (Aggarwal et al., EMNLP 2023, "Let's Sample Step by Step"): stop
  when P(p1 > p2 | votes) ≥ ``confidence`` under a Beta(v1+1, v2+1) posterior over the top two
  answers' shares; the paper's default threshold is 0.95 with at most 40 samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

StopRule = Literal["none", "unbeatable", "beta"]
STOP_RULES: tuple[str, ...] = ("none", "unbeatable", "beta")


@dataclass
class Tally:
    """The state of a vote: weight per answer, the winner by the tie rule, how many valid votes."""

    votes: dict[str, float] = field(default_factory=dict)
    first_index: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    valid: int = 0
    invalid: int = 0

    @property
    def ranking(self) -> list[str]:
        """Answers best first: by weight, then by earliest first sample (the tie rule)."""
        return sorted(self.votes, key=lambda k: (-self.votes[k], self.first_index[k]))

    @property
    def winner(self) -> str | None:
        r = self.ranking
        return r[0] if r else None

    @property
    def share(self) -> float:
        """The winner's share of the valid weight (0 when there is no valid vote)."""
        total = sum(self.votes.values())
        w = self.winner
        return self.votes[w] / total if w is not None and total > 0 else 0.0

    @property
    def share_of_samples(self) -> float:
        """The winner's weight over all samples, an invalid sample counting as one dissenting vote."""
        total = sum(self.votes.values()) + self.invalid
        w = self.winner
        return self.votes[w] / total if w is not None and total > 0 else 0.0

    def rounded(self, digits: int = 4) -> dict[str, float]:
        return {k: round(self.votes[k], digits) for k in self.ranking}


def tally(keys: Sequence[str | None], weights: Sequence[float] | None = None,
          indices: Sequence[int] | None = None) -> Tally:
    """Count votes; ``indices`` give each key's sample number (default: its position)."""
    t = Tally()
    for pos, k in enumerate(keys):
        idx = indices[pos] if indices is not None else pos
        if k is None:
            t.invalid += 1
            continue
        w = 1.0 if weights is None else float(weights[pos])
        if not math.isfinite(w) or w < 0:
            w = 0.0
        t.valid += 1
        t.votes[k] = t.votes.get(k, 0.0) + w
        t.counts[k] = t.counts.get(k, 0) + 1
        if k not in t.first_index or idx < t.first_index[k]:
            t.first_index[k] = idx
    return t


def logprob_weight(mean_logprob: float | None) -> float:
    """A sample's weight from its mean token logprob: the geometric-mean token probability in (0, 1].

    Unknown logprobs weigh 1, so a backend without logprobs falls back to plain voting.
    """
    if mean_logprob is None or not math.isfinite(mean_logprob):
        return 1.0
    return math.exp(min(0.0, mean_logprob))


def normalized_entropy(keys: Sequence[str | None]) -> float:
    """Entropy of the answer distribution over valid answers, divided by log(#valid) (0 = unanimous).

    Invalid answers are left out; with fewer than two valid answers there is nothing to disagree: 0.
    """
    valid = [k for k in keys if k is not None]
    n = len(valid)
    if n < 2:
        return 0.0
    counts: dict[str, int] = {}
    for k in valid:
        counts[k] = counts.get(k, 0) + 1
    h = -sum(c / n * math.log(c / n) for c in counts.values())
    return h / math.log(n)


def consistency_weight(keys: Sequence[str | None]) -> float:
    """ModelSwitch's per-model weight from its answers' consistency.

    ``1/n + (1 - 1/n) * (1 - H_norm)``: 1 for a unanimous model, 1/n for one whose n answers all
    differ, so a self-consistent model outweighs a scattered one in the pooled vote (Chen et al. 2025).
    """
    n = sum(1 for k in keys if k is not None)
    if n == 0:
        return 0.0
    return 1 / n + (1 - 1 / n) * (1 - normalized_entropy(keys))


def beta_confidence(v1: float, v2: float) -> float:
    """P(p1 > p2) for the top two answers under a Beta(v1 + 1, v2 + 1) posterior (Adaptive-Consistency)."""
    from scipy.special import betainc

    # P(X > 1/2) for X ~ Beta(v1+1, v2+1) = 1 - I_{1/2}(v1+1, v2+1)
    return float(1.0 - betainc(v1 + 1.0, v2 + 1.0, 0.5))


def unbeatable(t: Tally, remaining: float) -> bool:
    """True when the leader wins even if all ``remaining`` weight goes to the runner-up (or a new answer).

    A runner-up that would only *tie* loses when the leader's first sample came earlier (the tie
    rule); a brand-new answer would always come later, so it loses ties too.
    """
    ranking = t.ranking
    if not ranking:
        return False
    lead = t.votes[ranking[0]]
    if len(ranking) == 1:
        return lead > 0 and lead >= remaining
    second = ranking[1]
    gap = lead - t.votes[second]
    leader_wins_tie = t.first_index[ranking[0]] < t.first_index[second]
    # (a brand-new answer needs remaining > lead, impossible once gap >= remaining)
    return gap > remaining or (gap == remaining and leader_wins_tie)


def stop_reason(t: Tally, drawn: int, budget: int, rule: StopRule, confidence: float = 0.95,
                min_samples: int = 1) -> str | None:
    """Why sampling may stop now (``None``: keep going). ``drawn`` samples taken of ``budget``."""
    if drawn >= budget:
        return "budget"
    if rule == "none" or drawn < min_samples:
        return None
    remaining = budget - drawn
    if rule == "unbeatable":
        # weights may be < 1 (logprob weighting); a remaining sample adds at most 1
        return "unbeatable" if unbeatable(t, float(remaining)) else None
    if rule == "beta":
        r = t.ranking
        if not r:
            return None
        v1 = t.votes[r[0]]
        v2 = t.votes[r[1]] if len(r) > 1 else 0.0
        if beta_confidence(v1, v2) >= confidence:
            return "beta"
        return "unbeatable" if unbeatable(t, float(remaining)) else None
    raise ValueError(f"unknown stopping rule {rule!r}; one of {', '.join(STOP_RULES)}")


def switch_vote(keys_by_model: Sequence[Sequence[str | None]], indices_by_model: Sequence[Sequence[int]] | None = None,
                threshold: float = 0.8, vote: Literal["plain", "entropy"] = "plain",
                weights_by_model: Sequence[Sequence[float]] | None = None) -> tuple[Tally, bool]:
    """ModelSwitch's decision over the samples drawn so far: (the tally that decides, model 1 stood?).

    Model 1's top answer stands when it holds ≥ ``threshold`` of model 1's samples (an invalid
    answer counts as dissent); otherwise
    every model's samples are pooled, each model's votes weighted by its consistency when
    ``vote == "entropy"``. Indices default to model j's sample i being numbered after all of model
    j-1's, so ties go to the better-ranked model.
    """
    if indices_by_model is None:
        indices_by_model, start = [], 0
        for ks in keys_by_model:
            indices_by_model.append(list(range(start, start + len(ks))))
            start += len(ks)
    first = tally(keys_by_model[0], weights_by_model[0] if weights_by_model else None, indices_by_model[0])
    # a sample without a valid answer counts against model 1's consistency
    if first.valid and first.share_of_samples >= threshold:
        return first, True
    keys: list[str | None] = []
    weights: list[float] = []
    idx: list[int] = []
    for j, ks in enumerate(keys_by_model):
        cw = consistency_weight(ks) if vote == "entropy" else 1.0
        for i, k in enumerate(ks):
            keys.append(k)
            weights.append(cw * (weights_by_model[j][i] if weights_by_model else 1.0))
            idx.append(indices_by_model[j][i])
    return tally(keys, weights, idx), False
