"""An unmodified `openai` client against `junto serve` in front of the real embedded llama.cpp server."""

from __future__ import annotations

import httpx
import openai
import pytest

Q = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_non_streaming_with_routing_headers(embedded_gateway):
    url, _ = embedded_gateway
    raw = client(url).chat.completions.with_raw_response.create(model="junto-auto", messages=Q, temperature=0)
    h = raw.headers
    assert h["x-junto-deployment"] == "smollm2-135m" and h["x-junto-strategy"] == "direct"
    assert float(h["x-junto-routing-ms"]) >= 0 and len(h["x-junto-request-id"]) >= 16
    assert float(h["x-junto-cost"]) == 0.0
    resp = raw.parse()
    assert "paris" in resp.choices[0].message.content.lower()
    assert resp.usage.prompt_tokens > 0 and 0 < resp.usage.completion_tokens <= 24  # gateway clamp
    assert resp.model == "junto-auto"


def test_streaming_with_usage_and_headers(embedded_gateway):
    url, _ = embedded_gateway
    with client(url).chat.completions.with_streaming_response.create(
            model="junto-auto", messages=Q, temperature=0, stream=True,
            stream_options={"include_usage": True}) as resp:
        assert resp.headers["x-junto-deployment"] == "smollm2-135m"
        text, usage, finish = [], None, None
        for chunk in resp.parse():
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
    assert "paris" in "".join(text).lower()
    assert finish == "stop" or finish == "length"
    assert usage is not None and usage.completion_tokens >= 1


def test_deployment_name_pins_and_models_lists(embedded_gateway):
    url, _ = embedded_gateway
    c = client(url)
    ids = [m.id for m in c.models.list()]
    assert "junto-auto" in ids and "smollm2-135m" in ids
    raw = c.chat.completions.with_raw_response.create(model="smollm2-135m", messages=Q, max_tokens=4)
    assert raw.headers["x-junto-deployment"] == "smollm2-135m" and raw.headers["x-junto-routing-ms"] == "0.000"


def test_openai_shaped_errors(embedded_gateway):
    url, _ = embedded_gateway
    c = client(url)
    with pytest.raises(openai.NotFoundError) as err:
        c.chat.completions.create(model="no-such-model", messages=Q)
    assert err.value.body["code"] == "model_not_found"
    # invalid requests are 400 (BadRequestError), as the OpenAI API answers them, with the field in `param`
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model="junto-auto", messages=[])
    assert err.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model="junto-auto", messages=Q, temperature=7)
    assert err.value.body["param"] == "temperature"
    r = httpx.post(f"{url}/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "junto-auto", "messages": Q, "junto": {"samples": 3}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "junto"


def test_health_ready_metrics(embedded_gateway):
    url, _ = embedded_gateway
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200 and ready.json()["deployments"]["smollm2-135m"] == "ready"
    client(url).chat.completions.create(model="junto-auto", messages=Q, max_tokens=2)
    text = httpx.get(f"{url}/metrics").text
    assert 'junto_requests_total{model="junto-auto",status="200",strategy="direct"}' in text
    assert 'junto_routed_total{deployment="smollm2-135m"}' in text
    assert "junto_request_latency_seconds_bucket" in text and "junto_tokens_total" in text
