"""Voting, the tie rule, weights and early stopping: pure functions, no server."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from junto.reasoning.replay import replay_modelswitch, replay_sc
from junto.reasoning.voting import (beta_confidence, consistency_weight, logprob_weight, normalized_entropy,
                                    stop_reason, switch_vote, tally, unbeatable)


class TestTally:
    def test_majority(self):
        t = tally(["7", "1", "7", "0", "7"])
        assert t.winner == "7"
        assert t.votes == {"7": 3.0, "1": 1.0, "0": 1.0}
        assert t.share == pytest.approx(0.6)

    def test_invalid_never_wins(self):
        t = tally([None, None, None, "4"])
        assert t.winner == "4" and t.valid == 1 and t.invalid == 3
        empty = tally([None, None])
        assert empty.winner is None and empty.share == 0.0 and empty.votes == {}

    def test_tie_goes_to_the_earliest_first_sample(self):
        assert tally(["a", "b", "b", "a"]).winner == "a"
        assert tally(["b", "a", "a", "b"]).winner == "b"
        # explicit indices: arrival order does not matter, sample numbers do
        assert tally(["a", "b"], indices=[5, 2]).winner == "b"

    def test_tie_rule_is_independent_of_dict_order(self):
        keys = ["x", "y", "z", "z", "y", "x"]
        for perm in itertools.permutations(range(6)):
            t = tally([keys[i] for i in perm], indices=list(perm))
            assert t.winner == "x"

    def test_weights(self):
        t = tally(["a", "b", "b"], weights=[2.5, 1.0, 1.0])
        assert t.winner == "a"
        assert tally(["a", "b"], weights=[float("nan"), 0.1]).winner == "b"

    def test_logprob_weight(self):
        assert logprob_weight(None) == 1.0
        assert logprob_weight(0.0) == 1.0
        assert logprob_weight(-math.log(2)) == pytest.approx(0.5)
        assert logprob_weight(float("-inf")) == 1.0  # not finite: treated as unknown


class TestEntropy:
    def test_unanimous_and_scattered(self):
        assert normalized_entropy(["a"] * 5) == 0.0
        assert normalized_entropy(["a", "b", "c", "d"]) == pytest.approx(1.0)
        assert consistency_weight(["a"] * 5) == pytest.approx(1.0)
        assert consistency_weight(["a", "b", "c", "d"]) == pytest.approx(0.25)
        assert consistency_weight([None, None]) == 0.0

    def test_invalid_answers_left_out(self):
        assert normalized_entropy(["a", None, "a"]) == 0.0


class TestStopping:
    def test_unbeatable_exact_boundary(self):
        # leader 3, runner-up 1, 2 left: runner-up can tie at 3 but the leader came first
        assert unbeatable(tally(["a", "b", "a", "a"]), 2)
        # runner-up came first: a tie would go to it, so not yet
        assert not unbeatable(tally(["b", "a", "a", "a"]), 2)
        assert not unbeatable(tally(["a", "b", "a", "a"]), 3)
        # a single answer: a new answer needs more than the leader's votes
        assert unbeatable(tally(["a", "a"]), 2)
        assert not unbeatable(tally(["a", "a"]), 3)
        assert not unbeatable(tally([None]), 0)  # no valid vote: no leader to keep
        assert not unbeatable(tally([None]), 1)

    @pytest.mark.parametrize("k", [3, 4, 5, 6])
    def test_unbeatable_never_changes_the_answer(self, k):
        # exhaustive over every sequence of k answers from {a, b, c, invalid}
        for seq in itertools.product(["a", "b", "c", None], repeat=k):
            full = tally(list(seq)).winner
            r = replay_sc(list(seq), k, "unbeatable")
            assert r.answer == full, seq
            assert r.samples <= k

    def test_unbeatable_saves_samples_on_unanimous_runs(self):
        r = replay_sc(["7"] * 16, 16, "unbeatable")
        assert r.answer == "7" and r.samples == 8 and r.saved == 8

    def test_beta_confidence_matches_closed_form(self):
        # integer votes: P(p1 > p2) = sum_{j<=v1} C(n, j) / 2^n with n = v1 + v2 + 1
        for v1, v2 in [(3, 0), (4, 0), (5, 2), (2, 2)]:
            n = v1 + v2 + 1
            exact = sum(math.comb(n, j) for j in range(v1 + 1)) / 2 ** n
            assert beta_confidence(v1, v2) == pytest.approx(exact)
        assert beta_confidence(2, 2) == pytest.approx(0.5)

    def test_beta_rule_stops_earlier_than_unbeatable(self):
        keys = ["7"] * 16
        beta = replay_sc(keys, 16, "beta")
        assert beta.reason == "beta" and beta.samples == 4  # 31/32 ≥ 0.95 after four agreeing votes
        assert replay_sc(keys, 16, "beta", confidence=0.99).samples == 6

    def test_stop_reason_budget_and_min_samples(self):
        t = tally(["a"])
        assert stop_reason(t, 5, 5, "none") == "budget"
        assert stop_reason(t, 1, 5, "none") is None
        assert stop_reason(tally(["a"] * 4), 4, 20, "beta", min_samples=5) is None
        with pytest.raises(ValueError):
            stop_reason(t, 1, 5, "sometimes")  # type: ignore[arg-type]

    def test_random_sequences_beta_vs_full(self):
        rng = random.Random(7)
        for _ in range(200):
            seq = [rng.choice("aab") for _ in range(10)]
            r = replay_sc(seq, 10, "beta")
            assert 1 <= r.samples <= 10 and r.answer in ("a", "b")


class TestModelSwitch:
    def test_model_one_stands_at_threshold(self):
        t, stood = switch_vote([["7", "7", "7", "7", "3"], ["3", "3", "3", "3", "3"]], threshold=0.8)
        assert stood and t.winner == "7"

    def test_pooled_below_threshold(self):
        t, stood = switch_vote([["7", "7", "7", "3", "3"], ["3", "3", "3", "3", "3"]], threshold=0.8)
        assert not stood and t.winner == "3" and t.votes == {"3": 7.0, "7": 3.0}

    def test_entropy_weighting_favours_the_consistent_model(self):
        m1 = ["1", "2", "3", "4"]            # scattered: weight 1/4
        m2 = ["9", "9", "5", "6"]            # partly consistent
        plain, _ = switch_vote([m1, m2], threshold=0.8, vote="plain")
        weighted, _ = switch_vote([m1, m2], threshold=0.8, vote="entropy")
        assert plain.winner == "9"
        assert weighted.votes["9"] == pytest.approx(2 * consistency_weight(m2))
        assert weighted.votes["1"] == pytest.approx(0.25)

    def test_tie_goes_to_model_one(self):
        t, stood = switch_vote([["a", "b"], ["b", "a"]], threshold=0.8)
        assert not stood and t.winner == "a"

    def test_invalid_model_one_never_stands(self):
        t, stood = switch_vote([[None, None], ["4", "5"]], threshold=0.8)
        assert not stood and t.winner == "4"

    def test_sequential_replay_saves_model_two(self):
        r = replay_modelswitch([["7"] * 5, ["3"] * 5], 5, mode="sequential", threshold=1.0)
        assert r.answer == "7" and r.samples == 5 and r.saved == 5 and r.reason == "consistent"
        r = replay_modelswitch([["7", "7", "7", "7", "3"], ["3"] * 5], 5, mode="sequential", threshold=1.0)
        assert r.answer == "3" and r.samples == 10 and r.reason == "pooled vote"
        r = replay_modelswitch([["7", "7", "7", "7", "3"], ["3"] * 5], 5, mode="parallel", threshold=0.8)
        assert r.answer == "7" and r.samples == 10 and r.reason == "model 1 stands"


def test_invalid_answers_count_against_model_one():
    t, stood = switch_vote([["7", "7", None], ["3", "3", "3"]], threshold=0.8)
    assert not stood and t.winner == "3"
    t, stood = switch_vote([["7", "7", "7", "7", None], ["3", "3", "3"]], threshold=0.8)
    assert stood and t.winner == "7"
