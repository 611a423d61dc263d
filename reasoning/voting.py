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

**ModelSwitch** (:func:`switch_vote`; Chen et al. 2025, JianhaoChen-nju/ModelSwitch): a model whose
top answer holds ≥ the threshold of its samples is *consistent* and ends the switching; the pooled
vote scores answer ``a`` as ``Σ_m count_m(a) × w_m × π_m`` with the consistency weight
``w_m = b + (1 - b)(1 - H_m / log d_m)`` (``b = 1/n_m``, ``n_m`` valid answers, ``d_m`` distinct ones,
``w_m = 1`` when ``d_m = 1``) and the model's prior weight ``π_m``.
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


def _valid_counts(keys: Sequence[str | None]) -> tuple[dict[str, int], int]:
    counts: dict[str, int] = {}
    for k in keys:
        if k is not None:
            counts[k] = counts.get(k, 0) + 1
    return counts, sum(counts.values())


def normalized_entropy(keys: Sequence[str | None]) -> float:
    """H / log(d): the entropy of one model's valid answers over its maximum (0 = unanimous, 1 = uniform).

    ``H = -Σ p_a log p_a`` over the distinct valid answers ``a`` with ``p_a = count_a / n`` (``n``
    valid answers); ``d`` is the number of *distinct* valid answers, so ``log d`` is the largest
    entropy those answers could have (ModelSwitch's reference, ``calculate_scores_with_weights``).
    Invalid answers (``None``) are left out; with ``d ≤ 1`` there is no disagreement: 0.
    """
    counts, n = _valid_counts(keys)
    d = len(counts)
    if d < 2:
        return 0.0
    h = -sum(c / n * math.log(c / n) for c in counts.values())
    return h / math.log(d)


def consistency_weight(keys: Sequence[str | None]) -> float:
    """ModelSwitch's weight for one model's votes, from how consistent its answers are.

    ``w = b + (1 - b) * (1 - H / log d)`` with ``b = 1 / n`` (``n`` valid answers), ``H`` the entropy
    of those answers and ``d`` the number of distinct ones (:func:`normalized_entropy`); ``w = 1``
    when ``d = 1`` (unanimous) and ``w = b = 1/n`` when the answers are spread evenly over ``d ≥ 2``
    values. Example: ``[a, a, a, a, b]`` → ``H / log 2 = 0.7219``, ``w = 0.2 + 0.8 × 0.2781 = 0.4225``.
    A model without a valid answer has no votes to weigh: 0.
    """
    counts, n = _valid_counts(keys)
    if n == 0:
        return 0.0
    if len(counts) == 1:
        return 1.0
    b = 1.0 / n
    return b + (1.0 - b) * (1.0 - normalized_entropy(keys))


def consistency_share(keys: Sequence[str | None], failed: int = 0) -> float:
    """The share of one model's samples that gave its top answer: the ModelSwitch switch test.

    ``max_a count_a / (samples + failed)``: an invalid answer and a sample whose request failed both
    count as dissent. 0 when there is no sample.
    """
    counts, _ = _valid_counts(keys)
    total = len(keys) + failed
    return max(counts.values()) / total if counts and total else 0.0


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


@dataclass
class SwitchDecision:
    """ModelSwitch's decision: the tally that decides and how it was reached.

    ``consistent``: the position of the first model whose answers were consistent (``None``: none
    was); the vote covers models ``0 … used - 1``. ``stood``: model 1 was consistent, so its own
    answer stands. ``shares`` and ``weights``: per model, its consistency share and the weight its
    votes got in the pooled vote (consistency weight × prior for ``entropy``, the prior for ``plain``).
    """

    tally: Tally
    consistent: int | None
    used: int
    shares: list[float]
    weights: list[float]

    @property
    def stood(self) -> bool:
        return self.consistent == 0


def switch_vote(keys_by_model: Sequence[Sequence[str | None]], indices_by_model: Sequence[Sequence[int]] | None = None,
                threshold: float = 0.8, vote: Literal["plain", "entropy"] = "plain",
                weights_by_model: Sequence[Sequence[float]] | None = None,
                prior_weights: Sequence[float] | None = None,
                failed_by_model: Sequence[int] | None = None) -> SwitchDecision:
    """ModelSwitch (Chen et al. 2025) over the samples each model gave, models in rank order.

    Models are taken in turn, as the sequential form samples them: the first model ``j`` whose
    answers are *consistent* — its top answer holds ≥ ``threshold`` of its samples, invalid answers
    and failed requests (``failed_by_model``) counting as dissent (:func:`consistency_share`) — ends
    the vote, which then covers models ``1 … j``; when none is consistent it covers all. Model 1
    consistent means its own answer stands.

    The pooled vote gives each answer ``a`` the score ``Σ_m count_m(a) × w_m × π_m``: ``π_m`` the
    model's prior weight (``prior_weights``, default 1 each) and ``w_m`` its consistency weight
    ``b + (1 - b)(1 - H_m / log d_m)`` (:func:`consistency_weight`) for ``vote="entropy"``, 1 for
    ``"plain"``; ``weights_by_model`` (per-sample logprob weights) multiply in. Ties go to the answer
    whose first sample is numbered earliest; indices default to model j's samples numbered after
    model j-1's, so ties go to the better-ranked model (the reference picks the first answer met).
    """
    m = len(keys_by_model)
    if indices_by_model is None:
        indices_by_model, start = [], 0
        for ks in keys_by_model:
            indices_by_model.append(list(range(start, start + len(ks))))
            start += len(ks)
    priors = [1.0] * m if prior_weights is None else [float(w) for w in prior_weights]
    if len(priors) < m:
        raise ValueError(f"prior_weights has {len(priors)} weight(s) for {m} models")
    failed = [0] * m if failed_by_model is None else list(failed_by_model)
    shares = [consistency_share(ks, failed[j]) for j, ks in enumerate(keys_by_model)]
    consistent = next((j for j, (ks, s) in enumerate(zip(keys_by_model, shares))
                       if any(k is not None for k in ks) and s >= threshold), None)
    weights = [(consistency_weight(ks) if vote == "entropy" else 1.0) * priors[j]
               for j, ks in enumerate(keys_by_model)]
    if consistent == 0:
        first = tally(keys_by_model[0], weights_by_model[0] if weights_by_model else None, indices_by_model[0])
        return SwitchDecision(first, 0, 1, shares, weights)
    used = m if consistent is None else consistent + 1
    keys: list[str | None] = []
    ws: list[float] = []
    idx: list[int] = []
    for j in range(used):
        for i, k in enumerate(keys_by_model[j]):
            keys.append(k)
            ws.append(weights[j] * (weights_by_model[j][i] if weights_by_model else 1.0))
            idx.append(indices_by_model[j][i])
    return SwitchDecision(tally(keys, ws, idx), consistent, used, shares, weights)
