"""Thought templates on the experience store (and the migration of old template folders); the config wiring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from junto.errors import ConfigError
from junto.memory.experience import ExperienceStore
from junto.memory.templates import ThoughtTemplateStore

OLD = [
    {"id": "a1b2c3d4e5f6", "query": "What is 15% of 80?", "template": "Turn the percent into a fraction; multiply.",
     "sources": ["m1", "m2"], "created": "2026-01-02T03:04:05Z"},
    {"id": "0f0f0f0f0f0f", "query": "How many legs does a spider have?", "template": "Recall anatomy; a number.",
     "sources": ["m1"], "created": "2026-01-03T00:00:00Z"},
]


def _old_layout(folder, embedder) -> dict[str, bytes]:
    """A template folder as the pre-SQLite ThoughtTemplateStore wrote it."""
    folder.mkdir()
    vecs = embedder.encode([t["query"] for t in OLD]).astype(np.float32)
    (folder / "templates.jsonl").write_text("".join(json.dumps(t) + "\n" for t in OLD), encoding="utf-8")
    np.save(folder / "vectors.npy", vecs)
    (folder / "meta.json").write_text(json.dumps({"embedder": embedder.spec, "dim": int(vecs.shape[1])}))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_an_old_template_folder_is_migrated_once_and_kept(tmp_path):
    from junto.routers.embeddings import get_embedder

    folder = tmp_path / "templates"
    before = _old_layout(folder, get_embedder("static"))
    store = ThoughtTemplateStore(folder)  # the embedder comes from the old meta.json
    assert store.spec == {"kind": "static"} and len(store) == 2
    assert [(t.id, t.query, t.template, t.sources, t.created) for t in store.templates] == [
        (t["id"], t["query"], t["template"], t["sources"], t["created"]) for t in OLD]
    top, sim = store.search("What is 20% of 50?", k=1)[0]
    assert top.id == "a1b2c3d4e5f6" and 0.5 < sim <= 1.0001
    added = store.add("What is the capital of Peru?", "Name the city.", ["m3"])
    store.close()
    # the old files are untouched; the templates live in memory.db beside them
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name in before} == before
    assert (folder / "memory.db").is_file()
    again = ThoughtTemplateStore(folder)  # a second open does not import the old files again
    assert len(again) == 3 and again.search("capital city of Chile", k=1)[0][0].id == added.id
    with ExperienceStore(folder / "memory.db") as raw:
        exp = raw.get("a1b2c3d4e5f6")
        assert exp.kind == "template" and exp.meta["sources"] == ["m1", "m2"] and raw.count("experience") == 0
    again.close()


def test_template_store_errors(tmp_path):
    from junto.routers.embeddings import get_embedder

    folder = tmp_path / "old"
    _old_layout(folder, get_embedder("static"))
    with pytest.raises(ConfigError, match="built with embedder"):
        ThoughtTemplateStore(folder, embedder="minilm")
    new = tmp_path / "new"
    ThoughtTemplateStore(new, embedder="static").close()
    with pytest.raises(ConfigError, match="built with embedder") as err:
        ThoughtTemplateStore(new, embedder="minilm")
    assert "without an embedder" in err.value.hint
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        ThoughtTemplateStore(tmp_path / "file")
    broken = tmp_path / "broken"
    _old_layout(broken, get_embedder("static"))
    np.save(broken / "vectors.npy", np.zeros((5, 256), dtype=np.float32))
    with pytest.raises(ConfigError, match="inconsistent"):
        ThoughtTemplateStore(broken)


def test_config_opens_the_experience_store_relative_to_the_file_and_close_closes_it(tmp_path):
    from junto import Junto
    from junto.memory.experience import Experience

    cfg = tmp_path / "conf" / "junto.yaml"
    cfg.parent.mkdir()
    cfg.write_text("pool: {name: s, deployments: [{name: s, backend: openai, model: m, url: 'http://127.0.0.1:9/v1'}]}\n"
                   "memory: {experience: mem/experience.db, experience_max_items: 2}\n")
    j = Junto.from_config(str(cfg), state_root=tmp_path, auto_start=False)
    store = j.experience
    assert isinstance(store, ExperienceStore) and store.path == tmp_path / "conf" / "mem" / "experience.db"
    assert store.max_items == 2 and j.experience is store
    store.add(Experience("p", "s"))
    j.close()
    with pytest.raises(ConfigError, match="closed"):
        store.count()
    assert (tmp_path / "conf" / "mem" / "experience.db").is_file()
    bad = tmp_path / "bad.yaml"
    bad.write_text("pool: embedded\nmemory: {experience: x.db, experience_max_items: 0}\n")
    with pytest.raises(ConfigError) as err:
        Junto.from_config(str(bad))
    assert "experience_max_items" in err.value.message
    plain = tmp_path / "plain.yaml"
    plain.write_text("pool: embedded\n")
    default = Junto.from_config(str(plain), state_root=tmp_path / "state", auto_start=False)
    assert default.experience.path == tmp_path / "state" / "memory" / "experience.db"  # auto: in the state dir
    default.close()
    off = tmp_path / "off.yaml"
    off.write_text("pool: embedded\nmemory: {experience: 'off'}\n")
    assert Junto.from_config(str(off), state_root=tmp_path, auto_start=False).experience is None
