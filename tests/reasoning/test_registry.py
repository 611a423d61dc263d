"""The registry and the contract the fronts call: names, params validation, context checks."""

from __future__ import annotations

import pytest

from junto.errors import ConfigError
from junto.pool.client import PoolClient
from junto.pool.config import load_pool
from junto.reasoning import RunContext, get_strategy, run_strategy, strategy_names, validate_params


def test_names_and_docstrings_name_their_papers():
    assert strategy_names() == ["direct", "ets", "modelswitch", "rebase", "sc", "thoughtmani", "trimr", "xolver"]
    assert "2506.14234" in get_strategy("xolver").doc and "m = 3 agents" in get_strategy("xolver").doc
    assert "2502.13575" in get_strategy("ets").doc and "REBASE" in get_strategy("rebase").doc
    assert "2504.13626" in get_strategy("thoughtmani").doc and "<STOP>" in get_strategy("thoughtmani").doc
    assert "2505.17155" in get_strategy("trimr").doc and "M = 2" in get_strategy("trimr").doc
    assert "Wang et al." in get_strategy("sc").doc and "40" in get_strategy("sc").doc
    assert "2504.00762" in get_strategy("modelswitch").doc and "0.8" in get_strategy("modelswitch").doc
    for name in strategy_names():
        s = get_strategy(name)
        assert s.name == name and s.graph is not None


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(ConfigError) as e:
        get_strategy("tree-of-thought")
    assert "tree-of-thought" in e.value.message and "sc" in e.value.hint and "modelswitch" in e.value.hint


def test_defaults_are_the_documented_ones():
    sc = validate_params("sc", {})
    assert (sc.samples, sc.temperature, sc.early_stop, sc.confidence) == (8, 0.7, "unbeatable", 0.95)
    ms = validate_params("modelswitch", {})
    assert (ms.samples, ms.models, ms.threshold, ms.mode, ms.vote) == (5, 2, 0.8, "parallel", "plain")
    assert sc.allow_truncated is False and ms.allow_truncated is False and ms.prior_weights is None
    assert validate_params("modelswitch", {"models": 3, "prior_weights": [2, 2, 1]}).prior_weights == [2, 2, 1]


@pytest.mark.parametrize("name,params,needle", [
    ("sc", {"samples": 0}, "samples"),
    ("sc", {"samples": "many"}, "samples"),
    ("sc", {"early_stop": "sometimes"}, "early_stop"),
    ("sc", {"temperature": 5}, "temperature"),
    ("sc", {"answer": "poem"}, "answer"),
    ("sc", {"sample": 3}, "sample: unknown parameter"),
    ("modelswitch", {"threshold": 1.5}, "threshold"),
    ("modelswitch", {"mode": "zigzag"}, "mode"),
    ("direct", {"samples": 3}, "samples: unknown parameter"),
    ("direct", {"allow_truncated": True}, "allow_truncated: unknown parameter"),
    ("sc", {"allow_truncated": "maybe"}, "allow_truncated"),
    ("modelswitch", {"prior_weights": [1.0]}, "prior_weights needs one weight per model"),
    ("modelswitch", {"prior_weights": [1.0, 0.0]}, "prior_weights"),
    ("modelswitch", {"prior_weights": [1.0, float("nan")]}, "prior_weights"),
])
def test_bad_params_name_the_parameter_and_list_the_valid_ones(name, params, needle):
    with pytest.raises(ConfigError) as e:
        validate_params(name, params)
    assert needle in e.value.message
    assert e.value.hint.startswith(f"{name} takes:") and "temperature" in e.value.hint
    assert e.value.exit_code == 2


def test_params_must_be_a_mapping():
    with pytest.raises(ConfigError):
        validate_params("sc", ["samples", 3])  # type: ignore[arg-type]


async def test_bad_context_is_a_config_error_before_any_call():
    pool = load_pool("embedded")
    async with PoolClient(pool, {}) as client:
        msgs = [{"role": "user", "content": "hi"}]
        for ctx, needle in [
            (RunContext(client=client, pool=pool, candidates=[], max_samples=None, max_tokens=None, deadline_s=None),
             "no candidate"),
            (RunContext(client=client, pool=pool, candidates=["gpt-9"], max_samples=None, max_tokens=None,
                        deadline_s=None), "gpt-9"),
            (RunContext(client=client, pool=pool, candidates=["smollm2-135m"], max_samples=0, max_tokens=None,
                        deadline_s=None), "max_samples"),
            (RunContext(client=client, pool=pool, candidates=["smollm2-135m"], max_samples=None, max_tokens=None,
                        deadline_s=-1), "deadline_s"),
        ]:
            with pytest.raises(ConfigError) as e:
                await run_strategy("sc", ctx, msgs, {"samples": 2})
            assert needle in e.value.message
        ok = RunContext(client=client, pool=pool, candidates=["smollm2-135m"], max_samples=None, max_tokens=None,
                        deadline_s=None)
        with pytest.raises(ConfigError):
            await run_strategy("sc", ok, [], {})
