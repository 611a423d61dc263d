"""Voting strategies replayed over recorded answers: no model, no I/O.

``junto eval --replay`` and the benchmark use these to evaluate voting logic (k, stopping rules,
ModelSwitch's threshold) on samples recorded once, in the order they were drawn. The graphs make
the same decisions live (they call the same functions in :mod:`junto.reasoning.voting`). A recorded
sample that should not vote (no answer, or cut by ``max_tokens``) is recorded as ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from junto.reasoning.voting import StopRule, stop_reason, switch_vote, tally


@dataclass
class Replayed:
    answer: str | None
    samples: int          # samples the strategy would have drawn
    budget: int           # samples it was allowed
    votes: dict[str, float]
    reason: str

    @property
    def saved(self) -> int:
        return self.budget - self.samples


def replay_sc(keys: Sequence[str | None], k: int, early_stop: StopRule = "none", confidence: float = 0.95,
              min_samples: int = 1) -> Replayed:
    """Self-consistency over the first ``k`` recorded answers, stopping by ``early_stop`` after each one."""
    if k < 1:
        raise ValueError("k must be at least 1")
    budget = min(k, len(keys))
    if budget == 0:
        return Replayed(None, 0, 0, {}, "no samples")
    for drawn in range(1, budget + 1):
        t = tally(keys[:drawn])
        reason = stop_reason(t, drawn, budget, early_stop, confidence, min_samples)
        if reason is not None:
            return Replayed(t.winner, drawn, budget, t.rounded(), reason)
    raise AssertionError("unreachable: stop_reason returns 'budget' at the end")


def replay_modelswitch(keys_by_model: Sequence[Sequence[str | None]], k: int, threshold: float = 0.8,
                       mode: str = "parallel", vote: str = "plain", models: int = 2,
                       prior_weights: Sequence[float] | None = None) -> Replayed:
    """ModelSwitch over the first ``k`` recorded answers of each of the first ``models`` models.

    ``sequential``: model 1's samples first; the first model whose answers are consistent (its top
    answer holds ≥ ``threshold`` of its samples) stops the switching and the vote covers the models
    sampled so far. ``parallel``: every model's samples are drawn, and the decision is the same
    (:func:`~junto.reasoning.voting.switch_vote`). ``prior_weights``: one per model, default 1 each.
    """
    per = [list(ks[:k]) for ks in keys_by_model[:models]]
    budget = sum(len(ks) for ks in per)
    if budget == 0:
        return Replayed(None, 0, 0, {}, "no samples")
    priors = None if prior_weights is None else list(prior_weights)[:len(per)]
    if mode == "sequential":
        for j in range(1, len(per)):  # stop before the last model when model j is consistent
            d = switch_vote(per[:j], threshold=threshold, vote=vote, prior_weights=priors)  # type: ignore[arg-type]
            if d.consistent is not None:
                return Replayed(d.tally.winner, sum(len(x) for x in per[:j]), budget, d.tally.rounded(),
                                "consistent")
    d = switch_vote(per, threshold=threshold, vote=vote, prior_weights=priors)  # type: ignore[arg-type]
    return Replayed(d.tally.winner, budget, budget, d.tally.rounded(), "model 1 stands" if d.stood else "pooled vote")
