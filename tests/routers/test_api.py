"""The Python API the rest of junto uses: load_router(path).route(query, top_n=, candidates=)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from junto.errors import ConfigError
from junto.routers import RoutingDecision, fit_router, load_router
from junto.routers.base import load_costs, load_records


@pytest.fixture(scope="module")
def static_router(split_files, costs_file, tmp_path_factory):
    recs = load_records(split_files[0])
    r = fit_router(recs, "avengers", costs=load_costs(costs_file, recs.models), embedder="static")
    return r.save(tmp_path_factory.mktemp("api") / "avengers")


def test_route_returns_a_ranked_decision(static_router):
    router = load_router(static_router)
    assert len(router.models) == 9
    d = router.route("Natalia sold clips to 48 of her friends. How many clips did she sell altogether?")
    assert isinstance(d, RoutingDecision)
    assert d.chosen == d.ranked[0][0]
    scores = [s for _, s in d.ranked]
    assert scores == sorted(scores, reverse=True) and len(d.ranked) == 9
    assert d.latency_ms > 0 and d.details["clusters"]
    assert router.blocking is False  # static embedder: cheap enough for an event loop


def test_candidates_and_top_n(static_router):
    router = load_router(static_router)
    q = "Which gas do plants absorb from the air?"
    full = router.route(q)
    cands = [m for m, _ in full.ranked[-3:]]  # the three worst for this query
    d = router.route(q, candidates=cands, top_n=2)
    assert [m for m, _ in d.ranked] == [m for m, _ in full.ranked if m in cands][:2]
    assert d.chosen in cands
    with pytest.raises(ConfigError):
        router.route(q, candidates=["not-a-model"])


def test_route_batch_agrees_with_route(static_router):
    router = load_router(static_router)
    qs = ["What is 7 times 8?", "Who wrote Hamlet?", "Write a Python function that reverses a list."]
    batch = router.route_batch(qs)
    assert [d.chosen for d in batch] == [router.route(q).chosen for q in qs]
    for d, q in zip(batch, qs):
        assert np.allclose([s for _, s in d.ranked], [s for _, s in router.route(q).ranked], atol=1e-5)


def test_saving_replaces_a_router_atomically_and_refuses_other_dirs(static_router, tmp_path):
    router = load_router(static_router)
    target = tmp_path / "r"
    router.save(target)
    first = (target / "router.json").read_text()
    router.meta["created"] = "replaced"
    router.save(target)
    assert json.loads((target / "router.json").read_text())["created"] == "replaced" != json.loads(first)["created"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temp or backup dirs left
    other = tmp_path / "not-a-router"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError):
        router.save(other)
    assert (other / "precious.txt").read_text() == "keep me"


def test_loading_a_static_router_does_not_import_torch(static_router):
    code = (f"import sys; from junto.routers import load_router; r = load_router({str(static_router)!r}); "
            "d = r.route('What is the boiling point of water?'); "
            "b = r.blocking; print(d.chosen, 'torch' in sys.modules, 'sklearn' in sys.modules, b)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    chosen, torch_loaded, sklearn_loaded, blocking = out.stdout.split()
    assert torch_loaded == "False" and sklearn_loaded == "False" and blocking == "False"


def test_corrupt_artifact_is_a_clear_error(static_router, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(static_router, bad)
    (bad / "arrays.npz").write_bytes(b"not numpy")
    with pytest.raises(ConfigError, match="unreadable"):
        load_router(bad)
    meta = json.loads((bad / "router.json").read_text())
    meta["format_version"] = 99
    (bad / "router.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="version"):
        load_router(bad)


def test_minilm_router_routes_with_the_packaged_model(split_files, costs_file, tmp_path):
    recs = load_records(split_files[0]).subset(range(120))
    r = fit_router(recs, "knn", costs=load_costs(costs_file, recs.models), embedder="minilm")
    path = r.save(tmp_path / "knn")
    loaded = load_router(path)
    assert loaded.embedder_spec == {"kind": "minilm"}
    assert loaded.blocking is True  # torch per query: the facade routes it in a worker thread
    d = loaded.route(recs.questions[0])
    assert d.chosen in loaded.models


def test_pool_router_uses_deployment_names(static_router, tmp_path):
    from junto.pool.config import parse_pool
    from junto.routers import load_pool_router, pool_router_candidates

    router = load_router(static_router)
    deps = [{"name": m, "backend": "openai", "model": m, "url": "http://127.0.0.1:9/v1"} for m in router.models[:3]]
    pool_file = tmp_path / "pool.yaml"
    pool = parse_pool({"name": "p", "deployments": deps, "router": str(static_router)}, str(pool_file), pool_file)
    r = load_pool_router(pool)
    cands = pool_router_candidates(pool, r)
    assert cands == router.models[:3]
    assert r.route("What is 2 + 2?", candidates=cands).chosen in cands
    other = parse_pool({"name": "q", "deployments": [{"name": "x", "backend": "openai", "model": "x",
                                                      "url": "http://127.0.0.1:9/v1"}], "router": str(static_router)})
    with pytest.raises(ConfigError, match="none of which is an arm of the pool"):
        load_pool_router(other)
    assert load_pool_router(parse_pool({"name": "n", "deployments": deps})) is None
