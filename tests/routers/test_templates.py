"""Thought-template store: build templates with the embedded pool model, retrieve them, prompt with them."""

from __future__ import annotations

import pytest

from junto.answers import grade
from junto.memory.templates import Candidate, ThoughtTemplateStore, best_answers, prompt_with_templates, template_prompt


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


def _tree(root) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return len(files), sum(p.stat().st_size for p in files)


def test_search_with_new_queries_writes_nothing_and_keeps_caches_bounded(tmp_path, monkeypatch):
    from junto.routers import embeddings as E

    store = ThoughtTemplateStore(tmp_path / "s", embedder="static")  # loads the static model first
    assert store.blocking is False
    # the embedding cache, moved to a fresh folder holding one shard from a batch job
    monkeypatch.setattr(E, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(E, "_CACHES", type(E._CACHES)())  # no cache already open on the real folder
    E.embed(["a calibration question", "another one"], store.embedder)
    vectors_dir = tmp_path / "cache" / "embeddings" / "vectors"
    before = _tree(vectors_dir)
    assert before[0] == 1 and before[1] > 0
    open_caches = len(E._CACHES)

    store.add("How many legs does a spider have?", "Recall animal anatomy; answer with a number.")
    store.add("What is 15% of 80?", "Convert the percent to a fraction and multiply; answer with a number.")
    for i in range(300):
        q = f"What is {i}% of {i + 7}? (user question {i})"
        assert store.search(q, k=1)
        store.prompt(q, k=1)
    assert _tree(vectors_dir) == before, "a search wrote user queries into the embedding cache"
    assert len(E._CACHES) == open_caches <= E.MAX_OPEN_CACHES
    assert all(len(c) <= c.memory_items for c in E._CACHES.values())
    assert len(E._EMBEDDERS) <= E.MAX_EMBEDDERS
    # the folder holds the SQLite store (and its WAL files) only; searches added no row
    assert {p.name for p in (tmp_path / "s").iterdir()} <= {"memory.db", "memory.db-wal", "memory.db-shm"}
    assert len(store) == 2 and store.store.count() == 2


def test_minilm_store_is_blocking(tmp_path):
    store = ThoughtTemplateStore(tmp_path / "m", embedder="minilm")  # no template yet: nothing is encoded
    assert store.blocking is True
    assert store.search("anything") == []


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
        res = await embedded_client.chat(dep, [{"role": "user", "content": question + " Answer in one word."}],
                                         max_tokens=32, temperature=0.0)
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
