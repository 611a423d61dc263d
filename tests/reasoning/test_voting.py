"""Voting, the tie rule, weights and early stopping: pure functions, no server."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from junto.reasoning.replay import replay_modelswitch, replay_sc
from junto.reasoning.voting import (beta_confidence, consistency_share, consistency_weight, logprob_weight,
                                    normalized_entropy, stop_reason, switch_vote, tally, unbeatable)


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
    """ModelSwitch's consistency weight, pinned to numbers worked out by hand from the reference
    definition (JianhaoChen-nju/ModelSwitch, ``calculate_scores_with_weights``):
    w = b + (1 - b)(1 - H / log d), b = 1/n (n valid answers), d distinct answers, w = 1 when d = 1.
    H / log d does not depend on the base of the logarithm; the comments use bits."""

    # (answers, H / log d, w), hand-computed
    CASES = [
        # n=5, d=2, p=(.8,.2): H = .8·0.321928 + .2·2.321928 = 0.721928 bits; log2 2 = 1
        # w = 0.2 + 0.8·(1 - 0.721928) = 0.2 + 0.8·0.278072 = 0.422458
        (["a", "a", "a", "a", "b"], 0.721928, 0.422458),
        # n=4, d=2, p=(.5,.5): H = 1 bit = log2 2 → w = b = 0.25 (dividing by log2 4 gave 0.5 and w = 0.625)
        (["a", "a", "b", "b"], 1.0, 0.25),
        # n=5, d=3, p=(.6,.2,.2): H = .6·0.736966 + .4·2.321928 = 1.370951; / log2 3 = 1.584963 → 0.864974
        # w = 0.2 + 0.8·0.135026 = 0.308021
        (["a", "a", "a", "b", "c"], 0.864974, 0.308021),
        # n=4, d=2, p=(.75,.25): H = .75·0.415037 + .25·2 = 0.811278 → w = 0.25 + 0.75·0.188722 = 0.391541
        (["a", "a", "a", "b"], 0.811278, 0.391541),
        # n=8, counts (3,1,1,1,1,1), d=6: H = .375·1.415037 + 5·.125·3 = 2.405639; / log2 6 = 2.584963 → 0.930628
        # w = 0.125 + 0.875·0.069372 = 0.185700
        (["x", "x", "x", "y", "z", "u", "v", "w"], 0.930628, 0.185700),
        # invalid answers are left out: n=2 valid, d=2 → H / log d = 1, w = b = 0.5
        (["a", None, "b"], 1.0, 0.5),
        # unanimous (d = 1): no disagreement, w = 1 whatever n is
        (["a", "a", "a", None, None], 0.0, 1.0),
        (["a"], 0.0, 1.0),
        # every answer different (d = n): uniform, w = b = 1/n
        (["a", "b", "c", "d"], 1.0, 0.25),
    ]

    @pytest.mark.parametrize("answers,h_norm,weight", CASES)
    def test_reference_weights(self, answers, h_norm, weight):
        assert normalized_entropy(answers) == pytest.approx(h_norm, abs=1e-6)
        assert consistency_weight(answers) == pytest.approx(weight, abs=1e-6)

    def test_no_valid_answer_has_no_weight(self):
        assert consistency_weight([None, None]) == 0.0
        assert consistency_weight([]) == 0.0
        assert normalized_entropy([None]) == 0.0

    def test_consistency_share_counts_invalid_and_failed_as_dissent(self):
        assert consistency_share(["7", "7", "7", "7", "3"]) == pytest.approx(0.8)
        assert consistency_share(["7", "7", None]) == pytest.approx(2 / 3)
        assert consistency_share(["7", "7", "7", "7"], failed=1) == pytest.approx(0.8)
        assert consistency_share([None, None]) == 0.0
        assert consistency_share([]) == 0.0


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
        d = switch_vote([["7", "7", "7", "7", "3"], ["3", "3", "3", "3", "3"]], threshold=0.8)
        assert d.stood and d.consistent == 0 and d.used == 1 and d.tally.winner == "7"

    def test_pooled_below_threshold(self):
        # model 1 holds 0.6 < 0.8; model 2 (the last) is consistent: the vote covers both
        d = switch_vote([["7", "7", "7", "3", "3"], ["3", "3", "3", "3", "3"]], threshold=0.8)
        assert not d.stood and d.tally.winner == "3" and d.tally.votes == {"3": 7.0, "7": 3.0}

    def test_entropy_vote_pinned_to_the_reference(self):
        # threshold 1: model 1 (0.8) is not consistent, model 2 is unanimous (weight 1)
        # model 1 weight 0.422458 (see TestEntropy): 7 → 4·0.422458 = 1.689832; 3 → 0.422458 + 5·1 = 5.422458
        d = switch_vote([["7", "7", "7", "7", "3"], ["3"] * 5], threshold=1.0, vote="entropy")
        assert d.tally.votes["7"] == pytest.approx(1.689832, abs=1e-5)
        assert d.tally.votes["3"] == pytest.approx(5.422458, abs=1e-5)
        assert d.weights == pytest.approx([0.422458, 1.0], abs=1e-6)

    def test_entropy_weighting_favours_the_consistent_model(self):
        # model 1 scatters 8 samples (x three times; weight 0.185700), model 2 agrees twice (weight 1)
        m1 = ["x", "x", "x", "y", "z", "u", "v", "w"]
        m2 = ["y", "y"]
        plain = switch_vote([m1, m2], threshold=0.9, vote="plain")
        weighted = switch_vote([m1, m2], threshold=0.9, vote="entropy")
        # plain: x 3, y 3 → a tie, won by model 1's earlier x
        assert plain.tally.winner == "x" and plain.tally.votes["x"] == plain.tally.votes["y"] == 3.0
        # entropy: x 3·0.185700 = 0.557100; y 0.185700 + 2·1 = 2.185700
        assert weighted.tally.winner == "y"
        assert weighted.tally.votes["x"] == pytest.approx(0.557100, abs=1e-5)
        assert weighted.tally.votes["y"] == pytest.approx(2.185700, abs=1e-5)

    def test_prior_weights_multiply_each_models_votes(self):
        m1, m2 = ["a", "a", "b", "b"], ["c", "c", "c", "d"]   # weights 0.25 and 0.391541; neither unanimous
        d = switch_vote([m1, m2], threshold=1.0, vote="entropy")
        # a .5, b .5, c 3·0.391541 = 1.174623, d 0.391541
        assert d.tally.winner == "c" and d.tally.votes["c"] == pytest.approx(1.174623, abs=1e-5)
        d = switch_vote([m1, m2], threshold=1.0, vote="entropy", prior_weights=[5.0, 1.0])
        # a 2·0.25·5 = 2.5, b 2.5 (a wins the tie: first sample earlier), c 1.174623
        assert d.tally.winner == "a" and d.tally.votes["a"] == pytest.approx(2.5)
        assert d.tally.votes["c"] == pytest.approx(1.174623, abs=1e-5)
        d = switch_vote([m1, m2], threshold=1.0, vote="plain", prior_weights=[2.0, 1.0])
        assert d.tally.votes == {"a": 4.0, "b": 4.0, "c": 3.0, "d": 1.0} and d.tally.winner == "a"
        with pytest.raises(ValueError):
            switch_vote([m1, m2], prior_weights=[1.0])

    def test_first_consistent_model_ends_the_vote(self):
        # model 2 holds 0.8: the vote covers models 1–2 (7 wins 4 to 1), model 3's five 9s take no part
        per = [["1", "2", "3", "4", "5"], ["7", "7", "7", "7", "1"], ["9"] * 5]
        d = switch_vote(per, threshold=0.8)
        assert d.consistent == 1 and d.used == 2 and d.tally.winner == "7" and "9" not in d.tally.votes
        assert d.shares == pytest.approx([0.2, 0.8, 1.0])

    def test_failed_samples_count_as_dissent(self):
        assert switch_vote([["7"] * 4, ["3"] * 5], threshold=0.8, failed_by_model=[1, 0]).stood
        d = switch_vote([["7"] * 3, ["3"] * 5], threshold=0.8, failed_by_model=[2, 0])
        assert not d.stood and d.tally.winner == "3"

    def test_tie_goes_to_model_one(self):
        d = switch_vote([["a", "b"], ["b", "a"]], threshold=0.8)
        assert not d.stood and d.tally.winner == "a"

    def test_invalid_model_one_never_stands(self):
        d = switch_vote([[None, None], ["4", "5"]], threshold=0.8)
        assert not d.stood and d.tally.winner == "4"

    def test_sequential_replay_saves_model_two(self):
        r = replay_modelswitch([["7"] * 5, ["3"] * 5], 5, mode="sequential", threshold=1.0)
        assert r.answer == "7" and r.samples == 5 and r.saved == 5 and r.reason == "consistent"
        r = replay_modelswitch([["7", "7", "7", "7", "3"], ["3"] * 5], 5, mode="sequential", threshold=1.0)
        assert r.answer == "3" and r.samples == 10 and r.reason == "pooled vote"
        r = replay_modelswitch([["7", "7", "7", "7", "3"], ["3"] * 5], 5, mode="parallel", threshold=0.8)
        assert r.answer == "7" and r.samples == 10 and r.reason == "model 1 stands"

    def test_sequential_replay_stops_at_the_first_consistent_model(self):
        per = [["1", "2", "3", "4", "5"], ["7", "7", "7", "7", "1"], ["9"] * 5]
        r = replay_modelswitch(per, 5, mode="sequential", threshold=0.8, models=3)
        assert r.reason == "consistent" and r.samples == 10 and r.saved == 5 and r.answer == "7"
        # parallel draws all 15 samples but decides the same way
        r = replay_modelswitch(per, 5, mode="parallel", threshold=0.8, models=3)
        assert r.samples == 15 and r.answer == "7"

    def test_replay_prior_weights(self):
        r = replay_modelswitch([["a", "a", "b", "b"], ["c", "c", "c", "d"]], 4, threshold=1.0, vote="entropy",
                               prior_weights=[5.0, 1.0])
        assert r.answer == "a" and r.votes["a"] == pytest.approx(2.5)


def test_invalid_answers_count_against_model_one():
    d = switch_vote([["7", "7", None], ["3", "3", "3"]], threshold=0.8)
    assert not d.stood and d.tally.winner == "3"
    d = switch_vote([["7", "7", "7", "7", None], ["3", "3", "3"]], threshold=0.8)
    assert d.stood and d.tally.winner == "7"
