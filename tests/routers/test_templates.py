"""Thought-template store: build templates with the embedded pool model, retrieve them, prompt with them."""

from __future__ import annotations

import pytest

from junto.memory.templates import Candidate, ThoughtTemplateStore, best_answers, prompt_with_templates, template_prompt
from junto.routers.grading import grade


def test_best_answers_pick_top_scores_cheapest_first():
    cands = [Candidate("a", "x", 1.0, 50), Candidate("b", "y", 1.0, 7), Candidate("c", "z", 0.5, 1),
             Candidate("d", "w", 0.0, 1), Candidate("e", "v", 0.8, 9)]
    assert [c.model for c in best_answers(cands)] == ["b", "a", "e"]
    assert best_answers([Candidate("d", "w", 0.0)]) == []


def test_template_prompt_truncates_long_answers():
    p = template_prompt("Q?", [Candidate("m", "x" * 5000, 1.0)])
    assert "Q?" in p and "x" * 1000 + " …" in p and "x" * 1001 not in p


def test_store_persists_and_searches(tmp_path):
    store = ThoughtTemplateStore(tmp_path / "s", embedder="static")
    store.add("How many legs does a spider have?", "Recall animal anatomy; answer with a number.")
    store.add("What is 15% of 80?", "Convert the percent to a fraction and multiply; answer with a number.")
    again = ThoughtTemplateStore(tmp_path / "s")
    assert len(again) == 2
    top, sim = again.search("What is 20% of 50?", k=1)[0]
    assert top.query == "What is 15% of 80?" and 0 < sim <= 1.0001
    assert "Template: Convert the percent" in again.prompt("What is 20% of 50?", k=1)
    assert prompt_with_templates("Q", []) == "Q"


@pytest.mark.llamacpp
async def test_templates_end_to_end_with_the_embedded_pool(embedded_pool, embedded_client, tmp_path):
    pool, _ = embedded_pool
    dep = pool.default_deployment.name
    store = ThoughtTemplateStore(tmp_path / "templates", embedder="static")
    past = [("What is the capital of France?", ["Paris"]),
            ("What is the capital of Japan?", ["Tokyo"]),
            ("How many legs does a spider have?", ["8", "eight"])]
    made = 0
    for question, refs in past:
        res = await embedded_client.chat(dep, [{"role": "user", "content": question}], max_tokens=32, temperature=0.0)
        cands = [Candidate(dep, res.text, grade("f1", res.text, refs))]
        tpl = await store.summarize_and_add(embedded_client, dep, question, cands, max_tokens=64)
        if tpl is not None:
            made += 1
            assert tpl.template and tpl.sources == [dep]
    assert made >= 2, "the pool model should answer at least two of these well enough to learn from"
    found = store.search("What is the capital of Italy?", k=1)
    assert found and "capital" in found[0][0].query
    prompt = store.prompt("What is the capital of Italy?", k=1)
    assert prompt.startswith("Guidance from similar questions") and prompt.endswith("What is the capital of Italy?")
    answer = await embedded_client.chat(dep, [{"role": "user", "content": prompt}], max_tokens=32, temperature=0.0)
    assert answer.text.strip()
    assert len(ThoughtTemplateStore(tmp_path / "templates")) == made
