"""The request contract (junto.request): one validation for every front, pure logic."""

from __future__ import annotations

import pytest

from junto.config import JuntoConfig
from junto.errors import ConfigError
from junto.facade import Junto
from junto.pool.config import load_pool
from junto.request import build_request


def test_openai_sampling_fields_reach_a_voting_strategy():
    r = build_request("sc", {"presence_penalty": 0.0, "frequency_penalty": 0.5, "temperature": 0.3, "samples": 3})
    assert r.params == {"temperature": 0.3, "samples": 3}  # sc declares temperature: the request's value wins
    assert r.passthrough == {"presence_penalty": 0.0, "frequency_penalty": 0.5}
    assert r.sampling.temperature == 0.3


def test_budgets_are_split_off_and_validated():
    r = build_request("sc", {"max_samples": 8, "deadline_s": 2.5, "samples": 4})
    assert (r.budgets.max_samples, r.budgets.deadline_s) == (8, 2.5)
    assert "max_samples" not in r.params and "deadline_s" not in r.params
    with pytest.raises(ConfigError) as e:
        build_request("sc", {"max_samples": 0})
    assert e.value.param == "max_samples"


def test_config_defaults_sit_under_request_values():
    r = build_request("sc", {"samples": 2}, {"samples": 6, "max_samples": 8, "early_stop": "beta"})
    assert r.params == {"samples": 2, "early_stop": "beta"} and r.budgets.max_samples == 8


@pytest.mark.parametrize("options,param", [
    ({"temperature": 3}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"presence_penalty": -2.5}, "presence_penalty"),
    ({"top_logprobs": 21}, "top_logprobs"),
])
def test_out_of_range_sampling_names_the_field(options, param):
    with pytest.raises(ConfigError) as e:
        build_request("direct", options)
    assert e.value.param == param and param in e.value.message


def test_direct_refuses_strategy_parameters_by_name():
    with pytest.raises(ConfigError) as e:
        build_request("direct", {"samples": 4})
    assert e.value.param == "samples" and "direct" in e.value.message


def test_unknown_strategy_parameter_is_refused():
    with pytest.raises(ConfigError) as e:
        build_request("sc", {"sampels": 4})
    assert "sampels" in e.value.message


def test_logprobs_only_with_direct():
    assert build_request("direct", {"logprobs": True, "top_logprobs": 2}).passthrough == {"logprobs": True,
                                                                                          "top_logprobs": 2}
    with pytest.raises(ConfigError) as e:
        build_request("sc", {"logprobs": True})
    assert e.value.param == "logprobs"
    # found by the schema fuzzer: logprobs=false / top_logprobs=0 sent to a strategy once reached the pool
    # client twice over (a TypeError, HTTP 500); a false value means nothing and is dropped
    assert build_request("sc", {"logprobs": False, "top_logprobs": 0}).passthrough == {}


def test_facade_validates_configured_defaults_at_construction(tmp_path):
    pool = load_pool("embedded")
    ok = Junto(pool, config=JuntoConfig(pool=pool, strategies={"sc": {"max_samples": 8, "samples": 4}}))
    assert ok.prepare("sc", {"presence_penalty": 0.0}).budgets.max_samples == 8
    with pytest.raises(ConfigError) as e:
        Junto(pool, config=JuntoConfig(pool=pool, strategies={"sc": {"samples": 0}}))
    assert "strategies.sc" in e.value.message
