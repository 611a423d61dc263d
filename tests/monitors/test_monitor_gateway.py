"""An unmodified `openai` client over several requests of a decomposition attack from the test split, through
`junto serve` with the classifier monitor on, in front of the real embedded llama.cpp server."""

from __future__ import annotations

import httpx
import openai
import pytest

pytestmark = pytest.mark.llamacpp


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_attack_with_resent_history_is_refused_at_or_before_its_harmful_step(monitored_gateway, attack):
    url, _ = monitored_gateway
    c, messages, refused_at = client(url), [], None
    for k, text in enumerate(attack["requests"]):
        messages.append({"role": "user", "content": text})
        raw = c.chat.completions.with_raw_response.create(model="junto-auto", messages=messages, temperature=0)
        resp = raw.parse()
        messages.append({"role": "assistant", "content": resp.choices[0].message.content})
        if resp.choices[0].finish_reason == "content_filter":
            refused_at = k
            assert raw.headers["x-junto-monitor"].startswith("blocked;p=")
            assert "x-junto-deployment" not in raw.headers and resp.usage.total_tokens == 0
            break
        assert resp.choices[0].finish_reason in ("stop", "length") and "x-junto-monitor" not in raw.headers
    assert refused_at is not None and refused_at <= attack["harmful_step"]
    # every later request of the conversation is refused, however harmless
    messages.append({"role": "user", "content": "Thanks. What is the capital of France?"})
    resp = c.chat.completions.create(model="junto-auto", messages=messages, temperature=0)
    assert resp.choices[0].finish_reason == "content_filter"


def test_attack_over_separate_requests_tied_by_header_and_streamed_refusal(monitored_gateway, attack):
    url, _ = monitored_gateway
    c, refused_at = client(url), None
    head = {"x-junto-conversation": "attack-over-separate-requests"}
    for k, text in enumerate(attack["requests"]):  # nothing resent: only the header ties them together
        resp = c.chat.completions.create(model="junto-auto", messages=[{"role": "user", "content": text}],
                                         temperature=0, extra_headers=head)
        if resp.choices[0].finish_reason == "content_filter":
            refused_at = k
            break
    assert refused_at is not None and refused_at <= attack["harmful_step"]
    chunks = list(c.chat.completions.create(model="junto-auto", stream=True, extra_headers=head,
                                            messages=[{"role": "user", "content": "And what is 2 + 2?"}]))
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert "safety monitor" in "".join(ch.choices[0].delta.content or "" for ch in chunks)
    # the same requests without the header, one at a time, are separate conversations: none is refused first
    first = c.chat.completions.create(model="junto-auto", messages=[{"role": "user", "content": attack["requests"][0]}])
    assert first.choices[0].finish_reason in ("stop", "length")
    metrics = httpx.get(f"{url}/metrics").text
    assert 'junto_monitor_decisions_total{action="block",event="blocked",monitor="classifier"}' in metrics
    assert 'event="refused-earlier"' in metrics


def test_benign_multi_step_conversation_passes(monitored_gateway, benign):
    url, _ = monitored_gateway
    c, messages = client(url), []
    for text in benign["requests"]:
        messages.append({"role": "user", "content": text})
        raw = c.chat.completions.with_raw_response.create(model="junto-auto", messages=messages, temperature=0,
                                                          user="benign-user-1")
        resp = raw.parse()
        assert resp.choices[0].finish_reason in ("stop", "length") and resp.choices[0].message.content
        assert "x-junto-monitor" not in raw.headers and raw.headers["x-junto-deployment"] == "smollm2-135m"
        messages.append({"role": "assistant", "content": resp.choices[0].message.content})


def test_flag_policy_answers_with_a_header(monitored_gateway, attack):
    url, _ = monitored_gateway
    c, flagged = client(url), []
    for text in attack["requests"][: attack["harmful_step"] + 1]:
        raw = c.chat.completions.with_raw_response.create(
            model="smollm2-135m", messages=[{"role": "user", "content": text}],
            metadata={"conversation_id": "flag-policy"}, temperature=0)
        resp = raw.parse()
        assert resp.choices[0].finish_reason in ("stop", "length") and resp.choices[0].message.content
        flagged.append(raw.headers.get("x-junto-monitor", ""))
    assert any(h.startswith("flagged;p=") for h in flagged)


def test_malformed_conversation_id_is_a_400(monitored_gateway):
    url, _ = monitored_gateway
    with pytest.raises(openai.BadRequestError) as err:
        client(url).chat.completions.create(model="junto-auto", messages=[{"role": "user", "content": "hi"}],
                                            extra_headers={"x-junto-conversation": "x" * 300})
    assert "x-junto-conversation" in str(err.value)
