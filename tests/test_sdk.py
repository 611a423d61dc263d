"""The Python SDK facade against the real embedded llama.cpp server."""

from __future__ import annotations

import pytest
from helpers import process_alive

from junto import Junto, JuntoError
from junto.facade import ResultEvent, RoutedEvent, TokenEvent

Q = "What is the capital of France? Answer in one word."


def test_sync_ask_and_chat(embedded_pool, state_root):
    with Junto.from_config("embedded", state_root=state_root) as j:
        assert "paris" in j.ask(Q, temperature=0, max_tokens=8).lower()
        r = j.chat(Q, temperature=0, max_tokens=8)  # a second call reuses the pooled connection
        assert r.deployment == "smollm2-135m" and r.strategy == "direct"
        assert r.routing.ranked == ["smollm2-135m"] and r.routing.router == "pool-order"
        assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0 and not r.usage.estimated
        assert r.latency_s > 0 and len(r.trace_id) == 32
        d = r.to_dict()
        assert d["answer"] == r.answer and d["usage"]["total_tokens"] == r.usage.total_tokens


async def test_async_stream_events(embedded_pool, state_root):
    async with Junto.from_config("embedded", state_root=state_root) as j:
        kinds = []
        async for ev in j.astream([{"role": "user", "content": Q}], temperature=0, max_tokens=8):
            kinds.append(type(ev))
            if isinstance(ev, ResultEvent):
                result = ev.result
        assert kinds[0] is RoutedEvent and kinds[-1] is ResultEvent
        assert TokenEvent in kinds
        assert result.ttft_s is not None and 0 < result.ttft_s <= result.latency_s
        with pytest.raises(JuntoError, match="inside a running event loop"):
            j.chat(Q)


def test_closing_stops_only_what_it_started(tmp_path):
    j = Junto.from_config("embedded", state_root=tmp_path, keep=False)
    j.ask("Hi", max_tokens=2)
    pid = j.launcher.records()["smollm2-135m"].pid
    assert process_alive(pid)
    j.close()
    assert not process_alive(pid)
    assert j.launcher.records() == {}


def test_config_file_and_unknown_deployment(tmp_path, embedded_pool, state_root):
    cfg = tmp_path / "junto.yaml"
    cfg.write_text("pool: embedded\nstrategy: direct\ngateway: {port: 0}\n")
    with Junto.from_config(str(cfg), state_root=state_root) as j:
        assert j.pool.name == "embedded"
        with pytest.raises(JuntoError, match="no deployment 'nope'"):
            j.ask("hi", deployment="nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pool: embedded\ngateway: {prot: 1}\n")
    with pytest.raises(JuntoError) as err:
        Junto.from_config(str(bad))
    assert "gateway.prot" in err.value.message


def test_thought_templates_are_prepended(tmp_path, embedded_pool):
    """memory.templates: the template of a similar past query joins the prompt (and the result says which)."""
    from junto.memory.templates import ThoughtTemplateStore

    store = ThoughtTemplateStore(tmp_path / "templates", embedder="static")
    t = store.add("What is 12 times 11?", "Multiply step by step; give the number only.")
    store.add("Who painted the Mona Lisa?", "Name the artist in one line.")
    url = embedded_pool[1]["smollm2-135m"]
    cfg = tmp_path / "junto.yaml"
    cfg.write_text(f"pool: {{name: s, deployments: [{{name: s, backend: openai, model: smollm2-135m, url: '{url}'}}]}}\n"
                   f"memory: {{templates: templates, template_k: 1, min_similarity: 0.5}}\n")
    with Junto.from_config(str(cfg), state_root=tmp_path) as j:
        with_template = j.chat("What is 13 times 11?", max_tokens=8, temperature=0)
        assert with_template.extra["templates"] == [t.id]
        assert "templates" not in j.chat("Describe the weather on Mars in spring.", max_tokens=8).extra
    plain_cfg = tmp_path / "plain.yaml"
    plain_cfg.write_text(cfg.read_text().split("memory:")[0])
    with Junto.from_config(str(plain_cfg), state_root=tmp_path) as j:
        plain = j.chat("What is 13 times 11?", max_tokens=8, temperature=0)
    # the template reached the real model: the server counted a longer prompt
    assert with_template.usage.prompt_tokens > plain.usage.prompt_tokens + 5
