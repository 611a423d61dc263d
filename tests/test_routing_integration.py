"""A router artifact named in a pool file makes `junto chat`, the SDK and the gateway route."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from helpers import run_cli, serve

from junto import Junto

DATA = Path(os.environ.get("JUNTO_ROUTING_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "routing"))
RENAME = {"qwen2.5-7b-instruct": "fast", "llama3-chatqa-1.5-70b": "strong"}


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory) -> Path:
    """An Avengers router fitted on 600 real records, with two of the data's models renamed as deployments."""
    if not (DATA / "routing_train.json").exists():
        pytest.fail(f"shared routing data not found at {DATA} (set JUNTO_ROUTING_DATA)")
    tmp = tmp_path_factory.mktemp("router")
    records = json.loads((DATA / "routing_train.json").read_text())[:600]
    (tmp / "records.json").write_text(json.dumps(
        [{"question": r["question"], "scores": {new: r["scores"][old] for old, new in RENAME.items()}} for r in records]))
    proc = run_cli("route", "fit", "--records", str(tmp / "records.json"), "--method", "avengers", "--out",
                   str(tmp / "router"), "--embedder", "static", "--clusters", "8", timeout=600)
    assert proc.returncode == 0, proc.stderr
    return tmp / "router"


def real_pool(embedded_pool, *names: str) -> dict:
    """Deployments under the router's names, all served by the session's real llama.cpp server."""
    _, endpoints = embedded_pool
    url = endpoints["smollm2-135m"]
    return {"name": "routed", "deployments": [
        {"name": n, "backend": "openai", "model": "smollm2-135m", "url": url} for n in names]}


def test_sdk_routes_by_router_scores(router_dir, tmp_path, embedded_pool):
    pool = {**real_pool(embedded_pool, "fast", "strong", "unrouted"), "router": str(router_dir)}
    (tmp_path / "pool.yaml").write_text(json.dumps(pool))
    with Junto.from_config(str(tmp_path / "pool.yaml"), state_root=tmp_path) as j:
        r = j.chat("What is the integral of x^2 from 0 to 3?", max_tokens=8)
        assert r.text.strip(), "the real model answered"
        assert r.routing.router == "avengers" and r.routing.routing_ms > 0
        assert set(r.routing.scores) == {"fast", "strong"}
        assert r.routing.ranked[:2] == sorted(r.routing.scores, key=lambda m: -r.routing.scores[m])
        assert r.routing.ranked[-1] == "unrouted", "deployments the router does not know come last"
        assert r.deployment == r.routing.ranked[0]


def test_gateway_routes_and_reports_headers(router_dir, tmp_path, embedded_pool):
    cfg = {"pool": real_pool(embedded_pool, "fast", "strong"), "router": str(router_dir)}
    with serve(cfg, tmp_path) as (gw, _):
        r = httpx.post(f"{gw}/v1/chat/completions", timeout=60,
                       json={"model": "junto-auto", "max_tokens": 8,
                             "messages": [{"role": "user", "content": "Who wrote Hamlet?"}]})
        assert r.status_code == 200
        assert r.headers["x-junto-deployment"] in ("fast", "strong")
        assert float(r.headers["x-junto-routing-ms"]) > 0
        assert r.json()["junto"]["routing"]["router"] == "avengers"


def test_router_that_knows_no_deployment_is_refused(router_dir, tmp_path):
    pool = tmp_path / "pool.yaml"
    pool.write_text(json.dumps({"name": "other", "router": str(router_dir),
                                "deployments": [{"name": "x", "backend": "openai", "model": "m",
                                                 "url": "http://127.0.0.1:9/v1"}]}))
    proc = run_cli("chat", "--pool", str(pool), "hi")
    assert proc.returncode == 2 and "none of which is an arm of the pool" in proc.stderr
    assert "Traceback" not in proc.stderr


def arm_pool(embedded_pool, router_dir) -> dict:
    """One real deployment, two routing arms named as the router's models: sc with 2 samples, and direct."""
    pool = real_pool(embedded_pool, "small")
    return {**pool, "router": str(router_dir), "arms": [
        {"name": "fast", "deployment": "small", "strategy": "sc", "params": {"samples": 2, "max_tokens": 8}},
        {"name": "strong", "deployment": "small", "system": "Answer in one word."}]}


@pytest.mark.parametrize("question", ["What is the integral of x^2 from 0 to 3?", "Who wrote Hamlet?"])
def test_auto_runs_the_arm_the_router_ranks_first(router_dir, tmp_path, embedded_pool, question):
    (tmp_path / "pool.yaml").write_text(json.dumps(arm_pool(embedded_pool, router_dir)))
    with Junto.from_config(str(tmp_path / "pool.yaml"), state_root=tmp_path) as j:
        expected = j.route(question).arms
        r = j.chat(question, max_tokens=8)
        assert r.routing.arms == expected and r.routing.arm == expected[0]
        arm = j.pool.arm(r.routing.arm)
        assert r.strategy == arm.strategy and r.deployment == "small"
        assert r.samples == (2 if arm.strategy == "sc" else 1)
        # an explicit strategy runs on the best deployment; no arm is claimed
        r = j.chat(question, strategy="direct", max_tokens=4)
        assert r.routing.arm is None and r.strategy == "direct"


def test_gateway_reports_the_arm(router_dir, tmp_path, embedded_pool):
    with serve({"pool": arm_pool(embedded_pool, router_dir)}, tmp_path) as (gw, _):
        r = httpx.post(f"{gw}/v1/chat/completions", timeout=120,
                       json={"model": "junto-auto", "max_tokens": 8,
                             "messages": [{"role": "user", "content": "Who wrote Hamlet?"}]})
        assert r.status_code == 200, r.text
        arm = r.headers["x-junto-arm"]
        assert arm in ("fast", "strong") and r.json()["junto"]["routing"]["arm"] == arm
        assert r.headers["x-junto-strategy"] == {"fast": "sc", "strong": "direct"}[arm]


def test_bad_arms_are_refused_at_load(router_dir, tmp_path, embedded_pool):
    pool = arm_pool(embedded_pool, router_dir)
    pool["arms"][0]["deployment"] = "nowhere"
    (tmp_path / "a.yaml").write_text(json.dumps(pool))
    proc = run_cli("chat", "--pool", str(tmp_path / "a.yaml"), "hi")
    assert proc.returncode == 2 and "arms[0].deployment 'nowhere'" in proc.stderr and "Traceback" not in proc.stderr
    pool = arm_pool(embedded_pool, router_dir)
    pool["arms"][0]["params"] = {"samples": 0}
    (tmp_path / "b.yaml").write_text(json.dumps(pool))
    proc = run_cli("chat", "--pool", str(tmp_path / "b.yaml"), "hi")
    assert proc.returncode == 2 and "arm 'fast'" in proc.stderr and "samples" in proc.stderr
