"""The gateway's published contract is what it serves: validation before any model, documented statuses.

Against the real gateway (a `junto serve` subprocess) in front of the real embedded llama.cpp server;
the one stub server here injects a fault (a backend that refuses every request with 400).
"""

from __future__ import annotations

import httpx
import pytest
from helpers import serve, stub_pool, stub_server


def routed_total(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("junto_routed_total{"))


@pytest.mark.parametrize("message,param", [
    ({"role": "user"}, "messages[0].content"),
    ({"role": "user", "content": None}, "messages[0].content"),
    ({"role": "user", "content": []}, "messages[0].content"),
    ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}, "messages[0].content[0].type"),
    ({"role": "tool", "content": "42"}, "messages[0].role"),
    ({"content": "hi"}, "messages[0].role"),
])
def test_malformed_messages_are_refused_before_any_model(embedded_gateway, message, param):
    url, _ = embedded_gateway
    before = routed_total(url)
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "junto-sc", "messages": [message]}, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param, err
    assert routed_total(url) == before  # no deployment was called


@pytest.mark.parametrize("body,param", [
    ({"temperature": 5}, "temperature"),
    ({"n": 3}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"junto": {"sampels": 3}}, "sampels"),
    ({"junto": {"samples": 0}}, "samples"),
])
def test_bad_fields_name_themselves(embedded_gateway, body, param):
    url, _ = embedded_gateway
    r = httpx.post(f"{url}/v1/chat/completions",
                   json={"model": "junto-sc", "messages": [{"role": "user", "content": "2+2?"}], **body}, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and param in err["message"], err


def test_openai_sampling_fields_reach_a_strategy(embedded_gateway):
    url, _ = embedded_gateway
    r = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
        "model": "junto-sc", "presence_penalty": 0.0, "frequency_penalty": 0.0, "seed": 3, "user": "someone",
        "logprobs": False, "top_logprobs": 0,  # once a 500 (found by the fuzzer): now a no-op for strategies
        "messages": [{"role": "user", "content": "What is 2+3? Answer with a number."}], "junto": {"samples": 2}})
    assert r.status_code == 200, r.text
    assert r.json()["junto"]["samples"] >= 1


def test_configured_strategy_budgets_are_honoured(embedded_pool, tmp_path):
    cfg = {"pool": "embedded", "strategies": {"sc": {"max_samples": 2, "samples": 4}},
           "gateway": {"max_tokens_limit": 16}}
    with serve(cfg, tmp_path) as (url, _):
        r = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
            "model": "junto-sc", "messages": [{"role": "user", "content": "What is 1+1?"}]})
        assert r.status_code == 200, r.text
        assert r.json()["junto"]["samples"] <= 2


def test_unsupported_method_carries_allow(embedded_gateway):
    url, _ = embedded_gateway
    r = httpx.get(f"{url}/v1/chat/completions")
    assert r.status_code == 405
    assert "POST" in r.headers["allow"]
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_openapi_lists_every_status_and_true_media_types(embedded_gateway):
    url, _ = embedded_gateway
    doc = httpx.get(f"{url}/openapi.json").json()
    chat = doc["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert set(chat) == {"200", "400", "401", "404", "413", "429", "500", "503", "504"}
    assert "text/event-stream" in chat["200"]["content"] and "application/json" in chat["200"]["content"]
    for status in ("400", "404", "503"):
        assert chat[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=0.0.4"]
    served = httpx.get(f"{url}/metrics")
    assert served.headers["content-type"].startswith("text/plain")
    assert not any("422" in op.get("responses", {}) for path in doc["paths"].values() for op in path.values())


def test_a_backend_refusing_bad_input_is_not_cooled_down(tmp_path):
    """A deployment's own 4xx refusal is the client's error: its health stays untouched for everyone else."""
    with stub_server(mode="error400") as (stub, _):
        cfg = {"pool": stub_pool(("picky", stub)), "gateway": {"cooldown": {"failures": 1, "seconds": 600}}}
        with serve(cfg, tmp_path) as (url, _):
            for _ in range(3):
                r = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                               json={"model": "picky", "messages": [{"role": "user", "content": "hi"}]})
                assert r.status_code == 400, r.text
                assert r.json()["error"]["code"] == "upstream_rejected"
            ready = httpx.get(f"{url}/readyz").json()
            stats = httpx.get(stub.removesuffix("/v1") + "/stats").json()
    assert ready["deployments"]["picky"] == "ready", ready  # not "cooling"
    assert stats["chat_requests"] == 3  # every request still reached it: none was skipped as cooling
