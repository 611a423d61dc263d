"""Routing records that keep what each answer cost: calibration writes it, old records still load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from junto.errors import ConfigError
from junto.routers.base import load_records, parse_records
from junto.routers.calibrate import Item, calibrate, progress_path, read_progress


def test_old_records_without_usage_load_and_hash_as_before():
    items = [{"question": "q1", "scores": {"a": 1, "b": 0}}, {"question": "q2", "scores": {"a": 0.5, "b": 1}}]
    recs = parse_records(items)
    assert recs.realized_costs is None and recs.mean_realized_costs() is None
    # the data hash of records without costs is the one older junto versions computed
    h = hashlib.sha256()
    h.update(json.dumps(["a", "b"]).encode())
    for q, row in (("q1", [1.0, 0.0]), ("q2", [0.5, 1.0])):
        h.update(q.encode())
        h.update(np.asarray(row, dtype=np.float64).tobytes())
    assert recs.data_hash() == h.hexdigest()[:16]
    with_cost = parse_records([{**items[0], "usage": {"a": {"cost": 1.0}}}, items[1]])
    assert with_cost.data_hash() != recs.data_hash()


def test_usage_is_parsed_partially_and_validated():
    recs = parse_records([
        {"question": "q1", "scores": {"a": 1, "b": 0}, "usage": {"a": {"cost": 2.0, "completion_tokens": 5}}},
        {"question": "q2", "scores": {"a": 0, "b": 1}, "usages": {"b": {"cost": 4.0}, "a": {"latency_s": 0.3}}},
    ])
    assert np.array_equal(recs.realized_costs, np.array([[2.0, np.nan], [np.nan, 4.0]]), equal_nan=True)
    assert recs.has_realized_costs and recs.mean_realized_costs() == {"a": 2.0, "b": 4.0}
    sub = recs.subset([1]).select_models(["b"])
    assert sub.realized_costs.tolist() == [[4.0]]
    # a model with no cost anywhere: not enough to rank by realized cost
    only_a = parse_records([{"question": "q", "scores": {"a": 1, "b": 0}, "usage": {"a": {"cost": 1.0}}}])
    assert not only_a.has_realized_costs
    for bad in ({"c": {"cost": 1}}, {"a": {"cost": -1}}, {"a": {"cost": "cheap"}}, {"a": 3}, [1]):
        with pytest.raises(ConfigError):
            parse_records([{"question": "q", "scores": {"a": 1, "b": 0}, "usage": bad}])


def _items():
    return [Item("1", "Capital of France?", "Paris", "exact"), Item("2", "Capital of Japan?", "Tokyo", "exact")]


def _junto(embedded_pool, tmp_path):
    """Two priced deployments and an sc arm, all served by the session's real llama.cpp server."""
    from junto.config import JuntoConfig
    from junto.facade import Junto
    from junto.pool.config import parse_pool

    _, endpoints = embedded_pool
    url = endpoints["smollm2-135m"]
    pool = parse_pool({"name": "priced", "deployments": [
        {"name": "small", "backend": "openai", "model": "smollm2-135m", "url": url},
        {"name": "big", "backend": "openai", "model": "smollm2-135m", "url": url,
         "price": {"input": 1.0, "output": 2.0}}],
        "arms": [{"name": "small", "deployment": "small"}, {"name": "big", "deployment": "big"},
                 {"name": "big/sc2", "deployment": "big", "strategy": "sc", "params": {"samples": 2, "early_stop": "none"}}]}, "priced.yaml")
    return Junto(pool, config=JuntoConfig(pool=pool), state_root=tmp_path)


async def test_calibration_runs_arms_through_the_facade_and_keeps_what_they_cost(embedded_pool, tmp_path):
    from junto.routers.calibrate import facade_answer

    out = tmp_path / "records.jsonl"
    async with _junto(embedded_pool, tmp_path) as j:
        summary = await calibrate(facade_answer(j, max_tokens=8), ["small", "big", "big/sc2"], _items(), out)
    lines = [json.loads(x) for x in progress_path(out).read_text().splitlines()]
    assert sorted(x["deployment"] for x in lines) == sorted(["small", "big", "big/sc2"] * 2)
    for x in lines:
        assert x["prompt_tokens"] > 0 and 0 < x["completion_tokens"] and x["latency_s"] > 0
        price = (1.0, 2.0) if x["deployment"].startswith("big") else (0.0, 0.0)
        assert x["cost"] == pytest.approx((price[0] * x["prompt_tokens"] + price[1] * x["completion_tokens"]) / 1e6)
    # the sc arm ran the same prompt (one n=2 request, or two: at least the direct arm's prompt tokens)
    sc = [x for x in lines if x["deployment"] == "big/sc2"]
    direct = {x["id"]: x for x in lines if x["deployment"] == "big"}
    assert all(x["prompt_tokens"] >= direct[x["id"]]["prompt_tokens"] for x in sc), lines
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert set(records[0]["scores"]) == set(records[0]["usage"]) == {"small", "big", "big/sc2"}
    recs = load_records(out)
    assert recs.mean_realized_costs()["small"] == 0.0 and recs.mean_realized_costs()["big"] > 0
    assert set(summary["mean_cost"]) == {"small", "big", "big/sc2"}


async def test_resuming_from_progress_written_before_usage_was_kept(embedded_pool, tmp_path):
    from junto.routers.calibrate import facade_answer

    out = tmp_path / "records.jsonl"
    items = _items()
    # what an older junto wrote: completion tokens and latency, no prompt tokens, no cost
    old = {"item": items[0].key, "id": "1", "deployment": "small", "score": 1.0, "answer": "Paris",
           "completion_tokens": 3, "latency_s": 0.2}
    progress_path(out).write_text(json.dumps(old) + "\n" + '{"item": "torn')
    done = read_progress(progress_path(out))
    assert done[(items[0].key, "small")].usage() == {"completion_tokens": 3, "latency_s": 0.2}
    async with _junto(embedded_pool, tmp_path) as j:
        summary = await calibrate(facade_answer(j, max_tokens=8), ["small", "big"], items, out)
    assert summary["resumed"] == 1 and summary["graded_now"] == 3
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert records[0]["usage"]["small"] == {"completion_tokens": 3, "latency_s": 0.2}  # only what is known
    assert set(records[0]["usage"]["big"]) == {"prompt_tokens", "completion_tokens", "latency_s", "cost"}
    recs = load_records(out)  # partial usage loads; small has a known cost on item 2
    assert np.isnan(recs.realized_costs[0, 0]) and recs.has_realized_costs


def test_calibration_records_feed_avengers_pro(tmp_path):
    path = Path(tmp_path) / "r.jsonl"
    path.write_text("".join(json.dumps({"question": f"q{i}", "scores": {"a": 1, "b": 1},
                                        "usage": {"a": {"cost": 1.0}, "b": {"cost": 3.0}}}) + "\n" for i in range(3)))
    from junto.routers.avengers import AvengersProRouter

    recs = load_records(path)
    emb = np.eye(3, 4, dtype=np.float32)
    r = AvengersProRouter.fit(recs, emb, {"a": 1.0, "b": 1.0}, embedder_spec={"kind": "static"},
                              config={"n_clusters": 1})
    # equal scores (perf 1 each); eff a 1 − 1/3, b 0 → x a .7 + .3·2/3 = .9, b .7
    assert r.table[0].tolist() == pytest.approx([0.9, 0.7], abs=1e-6)
