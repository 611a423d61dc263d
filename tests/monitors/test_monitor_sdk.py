"""The SDK with the classifier monitor on (`Junto.achat(..., conversation=...)`), real embedded llama.cpp server."""

from __future__ import annotations

import pytest
from junto import Junto
from junto.config import JuntoConfig, MonitorSettings
from junto.pool.config import load_pool

pytestmark = pytest.mark.llamacpp


def monitored(state_root, **kw) -> Junto:
    cfg = JuntoConfig(pool="embedded", monitor=MonitorSettings(kind="classifier", **kw))
    return Junto(load_pool("embedded"), config=cfg, state_root=state_root)


async def test_sdk_refuses_an_attack_and_passes_a_benign_conversation(embedded_pool, state_root, attack, benign):
    async with monitored(state_root) as j:
        refused_at = None
        for k, text in enumerate(attack["requests"]):
            r = await j.achat(text, conversation="sdk-attack", max_tokens=8, temperature=0)
            if r.finish_reason == "content_filter":
                refused_at = k
                assert r.usage.total_tokens == 0 and r.extra["monitor"]["event"] == "blocked"
                break
            assert r.extra["monitor"]["event"] == "pass" and r.deployment == "smollm2-135m"
        assert refused_at is not None and refused_at <= attack["harmful_step"]
        later = await j.achat("What is the capital of France?", conversation="sdk-attack", max_tokens=8)
        assert later.finish_reason == "content_filter" and later.extra["monitor"]["event"] == "refused-earlier"
        messages = []
        for text in benign["requests"]:  # no id: the resent history ties the turns together
            messages.append({"role": "user", "content": text})
            r = await j.achat(messages, max_tokens=8, temperature=0)
            assert r.finish_reason in ("stop", "length") and r.extra["monitor"]["event"] == "pass"
            assert r.extra["monitor"]["turn"] == len(messages) // 2 + 1
            messages.append({"role": "assistant", "content": r.answer})


def test_sync_chat_with_monitor_off_per_model(embedded_pool, state_root, attack):
    with monitored(state_root, models={"smollm2-135m": "off"}) as j:
        for text in attack["requests"]:
            r = j.chat(text, conversation="sdk-off", deployment="smollm2-135m", max_tokens=4)
            assert r.finish_reason != "content_filter" and "monitor" not in r.extra
