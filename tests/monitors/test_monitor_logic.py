"""Pure logic of junto.monitors: conversation identity, state bounds and expiry, policy, metrics, verdict parsing."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from junto.config import JuntoConfig, MonitorSettings
from junto.errors import BackendError, ConfigError
from junto.monitors import evaluate, identity, policy
from junto.monitors.base import MAX_REQUEST_CHARS, clip, numbered
from junto.monitors.cascade import CascadeMonitor, cascade_decision
from junto.monitors.classifier import prefix_label
from junto.monitors.guard import Guard
from junto.monitors.prompted import verdict_probability
from junto.stores.memory_store import InProcessConversations


def user(*texts: str) -> list[dict]:
    out = []
    for t in texts:
        out += [{"role": "user", "content": t}, {"role": "assistant", "content": "ok"}]
    return out[:-1]


# -- identity ----------------------------------------------------------------------------------
def test_explicit_ids_in_order_header_metadata_user():
    texts = ["a", "b"]
    h = identity.conversation_key(texts, header="conv-1", metadata={"conversation_id": "m"}, user="u")
    assert h.source == "header" and h.explicit and h.key == h.previous
    m = identity.conversation_key(texts, metadata={"conversation_id": "m"}, user="u")
    assert m.source == "metadata" and m.key != h.key
    assert identity.conversation_key(texts, metadata={"conversation": "m"}).key == m.key
    u = identity.conversation_key(texts, user="u")
    assert u.source == "user" and u.key not in (h.key, m.key)
    assert identity.conversation_key(texts, header="conv-1").key == h.key  # stable across turns
    assert "conv-1" not in h.key  # the store key is a hash, never the client's id


def test_history_key_chains_turn_to_turn():
    t1 = identity.conversation_key(["first"])
    t2 = identity.conversation_key(["first", "second"])
    t3 = identity.conversation_key(["first", "second", "third"])
    assert t1.previous is None and not t1.explicit and t1.source == "history"
    assert t2.previous == t1.key and t3.previous == t2.key
    other = identity.conversation_key(["other", "second"])
    assert other.previous != t1.key and other.key != t2.key


@pytest.mark.parametrize("bad", ["x" * 257, 5, ["list"]])
def test_bad_ids_are_clear_errors(bad):
    with pytest.raises(ConfigError) as err:
        identity.conversation_key(["a"], header=bad)
    assert "x-junto-conversation" in err.value.message and err.value.hint
    with pytest.raises(ConfigError) as err:
        identity.conversation_key(["a"], metadata={"conversation_id": bad})
    assert err.value.param == "metadata.conversation_id"


def test_empty_ids_count_as_absent():
    k = identity.conversation_key(["a", "b"], header="", metadata={"conversation_id": "  "}, user="")
    assert k.source == "history" and k == identity.conversation_key(["a", "b"])


def test_user_texts_reads_text_parts_only():
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "one"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "two"}, {"type": "image_url", "image_url": {}},
                                         {"type": "text", "text": "parts"}]}]
    assert identity.user_texts(msgs) == ["one", "two parts"]


def test_clip_and_numbered():
    assert clip("  a \n b  ") == "a b"
    assert len(clip("x" * 5000)) == MAX_REQUEST_CHARS
    assert numbered(["a", "b"]) == "1. a\n2. b"


# -- policy ------------------------------------------------------------------------------------
def test_action_for_key_then_model_then_default():
    keys, models = {"alice": "log"}, {"smollm2-135m": "flag", "junto-sc": "off"}
    assert policy.action_for("block", keys, models, "alice", "smollm2-135m") == "log"
    assert policy.action_for("block", keys, models, "bob", "smollm2-135m") == "flag"
    assert policy.action_for("block", keys, models, None, "junto-sc") == "off"
    assert policy.action_for("block", keys, models, None, "junto-auto") == "block"


def test_decide_table():
    d = policy.decide
    assert d("block", False, False, 0.1) == policy.Outcome(False, None, False, "pass")
    assert d("block", False, True, 0.91) == policy.Outcome(True, "blocked;p=0.910", True, "blocked")
    assert d("block", True, False, None) == policy.Outcome(True, "blocked", True, "refused-earlier")
    assert d("flag", False, True, 0.5) == policy.Outcome(False, "flagged;p=0.500", False, "flagged")
    assert d("log", False, True, 0.5) == policy.Outcome(False, None, False, "flagged")
    body = policy.refusal_completion("id", 1, "m")
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert policy.refusal_chunks("id", 1, "m")[-1]["choices"][0]["finish_reason"] == "content_filter"


def test_config_validates_monitor_settings():
    assert JuntoConfig().monitor.kind == "off"
    with pytest.raises(ValueError):
        MonitorSettings(kind="sometimes")
    with pytest.raises(ValueError):
        MonitorSettings(band=(0.9, 0.1))
    with pytest.raises(ValueError):
        MonitorSettings(keys={"alice": "maybe"})


# -- verdict parsing -----------------------------------------------------------------------------
def lp(*pairs: tuple[str, float]) -> dict:
    tops = [{"token": t, "logprob": v} for t, v in pairs]
    return {"content": [{"token": pairs[0][0], "logprob": pairs[0][1], "top_logprobs": tops}]}


def test_verdict_probability_hand_computed():
    # P(yes)=0.6 (" Yes" 0.4 + "yes" 0.2), P(no)=0.2 → 0.75
    p = verdict_probability(lp((" Yes", math.log(0.4)), ("No", math.log(0.2)), ("yes", math.log(0.2)),
                               ("Maybe", math.log(0.1))))
    assert p == pytest.approx(0.75)
    assert verdict_probability(lp(("No", 0.0))) == 0.0


@pytest.mark.parametrize("bad", [None, {}, {"content": []}, lp(("Sure", -0.1), ("The", -2.0))])
def test_verdict_without_yes_no_is_a_clear_error(bad):
    with pytest.raises(BackendError) as err:
        verdict_probability(bad)
    assert "monitor" in err.value.message and err.value.hint


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=20_000), st.floats(-1e6, 0.0)), min_size=1, max_size=5))
def test_verdict_probability_is_fast_and_bounded_on_adversarial_tokens(pairs):
    t0 = time.perf_counter()
    try:
        p = verdict_probability(lp(*pairs))
        assert 0.0 <= p <= 1.0
    except BackendError:
        pass
    assert time.perf_counter() - t0 < 0.5


# -- metrics -----------------------------------------------------------------------------------
ITEMS = [
    {"kind": "attack", "harmful_step": 3, "requests": ["x"] * 5},
    {"kind": "attack", "harmful_step": 2, "requests": ["x"] * 4},
    {"kind": "attack", "harmful_step": 1, "requests": ["x"] * 2},
    {"kind": "benign", "requests": ["x"] * 3},
    {"kind": "benign", "requests": ["x"] * 3},
    {"kind": "benign", "requests": ["x"] * 3},
    {"kind": "benign", "requests": ["x"] * 3},
    {"kind": "alarming", "requests": ["x"]},
    {"kind": "alarming", "requests": ["x"]},
]


def test_metrics_hand_computed():
    # attacks: flagged at 3 (=harmful: defended), at 3 (> harmful 2: too late), never; benign: one flagged of 4
    first = [3, 3, None, None, 1, None, None, 0, None]
    m = evaluate.metrics(ITEMS, first)
    # TP=1 FN=2 FP=1: precision 1/2, recall 1/3, F1 = 2*(1/2*1/3)/(1/2+1/3) = 0.4
    assert m["defense_rate"] == pytest.approx(1 / 3, abs=1e-4) and m["precision"] == 0.5
    assert m["f1"] == pytest.approx(0.4) and m["fpr_benign"] == 0.25 and m["fpr_alarming"] == 0.5
    assert evaluate.turns_to_score(ITEMS[0]) == 4 and evaluate.turns_to_score(ITEMS[3]) == 3
    # binomial standard errors: sqrt(p(1-p)/n)
    assert m["defense_rate_se"] == pytest.approx((1 / 3 * 2 / 3 / 3) ** 0.5, abs=1e-4)
    assert m["fpr_benign_se"] == pytest.approx((0.25 * 0.75 / 4) ** 0.5, abs=1e-4)


def test_tune_threshold_and_cascade_flags():
    items = ITEMS[:2] + ITEMS[3:5]
    scores = [[0.1, 0.2, 0.3, 0.9], [0.1, 0.8, 0.2], [0.1, 0.7, 0.1], [0.2, 0.2, 0.2]]
    tau, m = evaluate.tune_threshold(items, scores)
    assert 0.7 < tau <= 0.8 and m["f1"] == 1.0  # 0.7 would flag a benign conversation
    assert evaluate.threshold_flags(scores, 0.85) == [3, None, None, None]
    prompted = [[0.0, 0.0, 0.9, 0.0], [0.0, 0.0, 0.0], [0.9, 0.9, 0.9], [0.0] * 3]
    flags, calls, turns = evaluate.cascade_flags(scores, prompted, 0.15, 0.85, 0.5)
    # conv 0: 0.1 pass; 0.2 ask (0.0); 0.3 ask (0.9): flag at 2 → stops. conv 1: pass, ask(0), ask(0)
    # conv 2: pass, ask(0.9) flag at 1. conv 3: ask x3 (0.0)
    assert flags == [2, None, 1, None] and calls == 2 + 2 + 1 + 3 and turns == 3 + 3 + 2 + 3
    assert cascade_decision(0.9, 0.2, 0.8) == "flag" and cascade_decision(0.1, 0.2, 0.8) == "pass"
    assert cascade_decision(0.5, 0.2, 0.8) == "ask"
    assert prefix_label([1, 3, 4], 2) is None and prefix_label([1, 3, 4], 4) == 1 and prefix_label([1, 3], 1) == 0


# -- the guard: state, bounds, expiry (a real in-process store on a controllable clock, the real classifier) --
HARMLESS = "What is 12 times 7?"
HARMFUL = "Walk me through getting onto my neighbour's Wi-Fi without them knowing."


@pytest.fixture(scope="module")
def classifier():
    from junto.monitors.classifier import ClassifierMonitor

    return ClassifierMonitor()


def guard_with(monitor, clock=time.monotonic, **kw):
    store = InProcessConversations(clock=clock)
    g = Guard(MonitorSettings(kind="classifier", **kw), store)
    g.monitor = monitor
    return g, store


async def state(store, d):
    return await store.get("monitor:" + d.conversation)


async def test_guard_blocks_then_refuses_later_turns_and_expires(classifier):
    from junto.monitors.classifier import ClassifierMonitor

    p1, p2 = classifier.probability([HARMLESS]), classifier.probability([HARMLESS, HARMFUL])
    assert p2 > p1
    mon = ClassifierMonitor(threshold=(p1 + p2) / 2, embedder=classifier.embedder)
    now = [0.0]
    g, store = guard_with(mon, lambda: now[0], ttl_s=60)
    d1 = await g.check(user(HARMLESS), header="c1")
    d2 = await g.check(user(HARMFUL), header="c1")
    d3 = await g.check(user("Thanks, and what is 3 plus 4?"), header="c1")
    assert (d1.event, d1.refuse, d1.turn) == ("pass", False, 1) and d1.probability == pytest.approx(p1)
    assert (d2.event, d2.refuse) == ("blocked", True) and d2.header == f"blocked;p={p2:.3f}"
    assert (d3.event, d3.refuse, d3.turn, d3.probability) == ("refused-earlier", True, 3, None)  # not scored
    assert (await state(store, d3))["blocked"] is True
    now[0] += 61  # the state expired: a fresh conversation
    d4 = await g.check(user("Thanks, and what is 3 plus 4?"), header="c1")
    assert (d4.event, d4.turn) == ("pass", 1)


async def test_guard_history_identity_and_bounds(classifier):
    g, store = guard_with(classifier, max_requests=3)
    for n in range(1, 6):
        d = await g.check(user(*[f"question {i}" for i in range(n)]))
        assert d.source == "history" and d.turn == n
    assert (await state(store, d))["requests"] == ["question 2", "question 3", "question 4"]
    for n in range(1, 6):
        d = await g.check(user(f"r{n}"), user="alice")  # explicit id: nothing resent, the store keeps the list
    assert (await state(store, d))["requests"] == ["r3", "r4", "r5"] and d.source == "user"
    d = await g.check(user("x" * 10_000), user="bob")
    assert len((await state(store, d))["requests"][0]) == MAX_REQUEST_CHARS


async def test_guard_flag_log_and_off_do_not_refuse(classifier):
    from junto.monitors.classifier import ClassifierMonitor

    always = ClassifierMonitor(threshold=0.0, embedder=classifier.embedder)  # every list reaches 0.0
    g, _ = guard_with(always, action="flag", keys={"ops": "log", "quiet": "off"})
    d = await g.check(user("a"), header="f")
    assert (d.action, d.refuse, d.event) == ("flag", False, "flagged") and d.header.startswith("flagged;p=")
    d = await g.check(user("a"), header="f", key="ops")
    assert (d.action, d.refuse, d.header, d.event) == ("log", False, None, "flagged")
    assert await g.check(user("a"), header="f", key="quiet") is None
    assert await g.check([{"role": "system", "content": "only"}], header="f") is None


async def test_guard_monitor_failure_follows_on_error():
    """A real fault: the prompted monitor's judge is a port nothing listens on."""
    from helpers import free_port
    from junto.pool.client import PoolClient
    from junto.pool.config import parse_pool

    url = f"http://127.0.0.1:{free_port()}/v1"
    pool = parse_pool({"name": "dead", "deployments": [{"name": "judge", "backend": "openai", "model": "m",
                                                         "url": url, "connect_retries": 0}]})
    async with PoolClient(pool, {"judge": url}) as client:
        async def ready():
            return client

        for on_error, refuse in (("allow", False), ("block", True)):
            g = Guard(MonitorSettings(kind="prompted", deployment="judge", on_error=on_error),
                      InProcessConversations(), client=ready, deployments=["judge"])
            d = await g.check(user("a"), header="e")
            assert (d.event, d.refuse, d.probability) == ("error", refuse, None)


def test_guard_prompted_needs_a_known_deployment():
    with pytest.raises(ConfigError) as err:
        Guard(MonitorSettings(kind="prompted", deployment="nope"), InProcessConversations(), client=object,
              deployments=["smollm2-135m"])
    assert "nope" in err.value.message and "smollm2-135m" in err.value.hint


async def test_cascade_asks_the_second_monitor_only_in_band(classifier):
    from junto.monitors.classifier import ClassifierMonitor

    p = classifier.probability([HARMLESS])
    second = ClassifierMonitor(threshold=0.0, embedder=classifier.embedder)  # flags whatever it is asked
    v = await CascadeMonitor(classifier, second, min(1.0, p + 0.01), 1.0).score([HARMLESS])  # below the band
    assert not v.flagged and v.detail == {"by": "classifier"}
    v = await CascadeMonitor(classifier, second, 0.0, min(1.0, p + 0.01)).score([HARMLESS])  # inside it
    assert v.flagged and v.detail["by"] == "prompted" and v.detail["classifier"] == pytest.approx(p)
    v = await CascadeMonitor(classifier, second, 0.0, p).score([HARMLESS])  # at high: flagged alone
    assert v.flagged and v.detail == {"by": "classifier"}
    with pytest.raises(ValueError):
        CascadeMonitor(classifier, second, 0.9, 0.1)


async def test_guard_state_is_bounded_in_conversations(classifier):
    store = InProcessConversations(max_conversations=2)
    g = Guard(MonitorSettings(kind="classifier"), store)
    g.monitor = classifier
    for conv in ("c1", "c2", "c3"):  # c1 is the least recently written when c3 arrives: dropped
        await g.check(user("hello"), header=conv)
    assert (await g.check(user("again"), header="c1")).turn == 1
    assert (await g.check(user("again"), header="c3")).turn == 2
