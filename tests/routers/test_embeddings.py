"""Embeddings: the real packaged MiniLM, the distilled static model, and the on-disk cache."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from junto.routers.embeddings import EmbeddingCache, embed, get_embedder, parse_embedder_spec, text_key
from junto.errors import ConfigError


def test_minilm_embeds_normalized_and_semantic(tmp_path):
    e = get_embedder("minilm")
    v = embed(["How do I bake bread?", "What is a good bread recipe?", "The stock market fell today."], e,
              cache_root=tmp_path)
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2  # similar questions are closer than unrelated ones


def test_static_embedder_matches_minilm_neighbourhoods(tmp_path):
    e = get_embedder("static")
    v = embed(["How do I bake bread?", "What is a good bread recipe?", "The stock market fell today."], e,
              cache_root=tmp_path)
    assert v.shape[1] == 256
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]


def test_cache_hit_returns_the_same_vectors_without_encoding(tmp_path):
    e = get_embedder("static")
    texts = [f"question number {i}" for i in range(20)]
    first = embed(texts, e, cache_root=tmp_path)
    cache = EmbeddingCache(e.id, tmp_path)
    cache.refresh()
    assert len(cache) == 20
    calls = []
    again = embed(texts, e, cache_root=tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert np.array_equal(first, again)
    assert calls == [(20, 20)]  # nothing left to encode


def test_bad_embedder_spec_is_a_config_error():
    with pytest.raises(ConfigError):
        parse_embedder_spec("word2vec")


def _writer(root: str, worker: int, n: int) -> None:
    cache = EmbeddingCache("test-space", __import__("pathlib").Path(root))
    rng = np.random.default_rng(worker)
    for i in range(n):
        keys = [text_key(f"w{worker}-{i}-{j}") for j in range(5)]
        cache.put_many(keys, rng.standard_normal((5, 8)).astype(np.float32))


def test_concurrent_writers_lose_nothing(tmp_path):
    EmbeddingCache.MERGE_AT = 32  # keep the default: merging happens during the run below
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 12)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = EmbeddingCache("test-space", tmp_path)
    cache.refresh()
    expected = {text_key(f"w{w}-{i}-{j}") for w in range(4) for i in range(12) for j in range(5)}
    assert expected <= set(cache._vecs)
    assert not list(cache.dir.glob(".tmp-*"))


def test_interrupted_write_is_invisible(tmp_path):
    cache = EmbeddingCache("test-space", tmp_path)
    cache.put_many([text_key("kept")], np.ones((1, 4), dtype=np.float32))
    # what a writer killed mid-write leaves: a temp file, and (worse) a torn shard copied in by hand
    (cache.dir / ".tmp-shard-999-1-dead.npz").write_bytes(b"PK\x03\x04 torn")
    (cache.dir / "shard-99999999999999999999-1-torn.npz").write_bytes(b"PK\x03\x04 torn")
    fresh = EmbeddingCache("test-space", tmp_path)
    got = fresh.get_many([text_key("kept"), text_key("missing")])
    assert list(got) == [text_key("kept")]


def test_writer_killed_mid_run_leaves_a_readable_cache(tmp_path):
    code = (
        "import numpy as np, pathlib, sys\n"
        "from junto.routers.embeddings import EmbeddingCache, text_key\n"
        f"c = EmbeddingCache('test-space', pathlib.Path({str(tmp_path)!r}))\n"
        "i = 0\n"
        "while True:\n"
        "    c.put_many([text_key(f'k{i}-{j}') for j in range(200)], np.random.rand(200, 64).astype(np.float32))\n"
        "    i += 1\n"
        "    print(i, flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):
            proc.stdout.readline()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    cache = EmbeddingCache("test-space", tmp_path)
    cache.refresh()
    assert len(cache) >= 600 and len(cache) % 200 == 0  # whole shards only


def test_blocking_says_which_embedders_belong_off_the_event_loop():
    from junto.routers.embeddings import spec_is_blocking

    assert get_embedder("static").blocking is False
    assert get_embedder("minilm").blocking is True  # constructing it loads no model
    assert spec_is_blocking("minilm") and spec_is_blocking({"kind": "sentence-transformers", "model": "/m"})
    assert not spec_is_blocking("static") and not spec_is_blocking("m2v:/some/folder")


def test_cache_memory_is_bounded_and_evicted_vectors_come_back_from_disk(tmp_path):
    cache = EmbeddingCache("test-space", tmp_path, memory_items=10)
    rng = np.random.default_rng(0)
    keys = [text_key(f"k{i}") for i in range(25)]
    vecs = rng.standard_normal((25, 4)).astype(np.float32)
    for start in range(0, 25, 5):
        cache.put_many(keys[start:start + 5], vecs[start:start + 5])
        assert len(cache) <= 10
    got = cache.get_many(keys)  # one call may return more than the bound; it keeps no more
    assert len(got) == 25 and len(cache) == 10
    assert all(np.array_equal(got[k], v) for k, v in zip(keys, vecs))
    cache.refresh()
    assert len(cache) == 10


def test_embed_keeps_memory_and_open_caches_bounded(tmp_path, monkeypatch):
    from junto.routers import embeddings as E

    monkeypatch.setattr(EmbeddingCache, "MEMORY_ITEMS", 16)
    e = get_embedder("static")
    texts = [f"distinct question {i}" for i in range(100)]
    first = embed(texts, e, cache_root=tmp_path / "c")
    cache = E._open_cache(e, tmp_path / "c")
    assert len(cache) <= 16
    calls = []
    again = embed(texts, e, cache_root=tmp_path / "c", progress=lambda d, t: calls.append((d, t)))
    assert np.array_equal(first, again) and calls == [(100, 100)]  # all read back from disk, none re-encoded
    assert len(cache) <= 16
    for i in range(3 * E.MAX_OPEN_CACHES):
        embed(["x"], e, cache_root=tmp_path / f"root{i}")
        assert len(E._CACHES) <= E.MAX_OPEN_CACHES


def test_online_encode_one_matches_the_batch_path_and_touches_no_disk(tmp_path, monkeypatch):
    from junto.routers import embeddings as E

    e = get_embedder("static")
    batch = embed(["What is 2 + 2?"], e, cache_root=tmp_path)

    def no_disk(*a, **k):
        raise AssertionError("the online path touched the on-disk cache")

    monkeypatch.setattr(E.EmbeddingCache, "get_many", no_disk)
    monkeypatch.setattr(E.EmbeddingCache, "put_many", no_disk)
    assert np.allclose(e.encode_one("What is 2 + 2?"), batch[0], atol=1e-5)
