"""`junto route fit | eval | explain` through the real CLI, on a subset of the shared routing data."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli

METHODS = ["avengers", "avengers-pro", "knn", "mlp", "svm"]


@pytest.fixture(scope="module")
def fitted(split_files, costs_file, tmp_path_factory):
    train, _test = split_files
    out = {}
    base = tmp_path_factory.mktemp("routers")
    for method in METHODS:
        d = base / method
        r = run_cli("route", "fit", "--records", str(train), "--method", method, "--out", str(d),
                    "--costs", str(costs_file), "--embedder", "static", "--json")
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        assert summary["method"] == method and summary["records"] == 400
        out[method] = d
    return out


def test_fit_writes_a_versioned_artifact(fitted):
    meta = json.loads((fitted["avengers"] / "router.json").read_text())
    assert meta["format"] == "junto-router" and meta["format_version"] == 1
    assert meta["method"] == "avengers" and meta["config"]["n_clusters"] == 64
    assert meta["embedder"] == {"kind": "static"}
    assert len(meta["data"]["hash"]) == 16 and meta["data"]["n_records"] == 400
    assert meta["costs"]["llama3-chatqa-1.5-70b"] == 70
    assert meta["best_single"] in meta["models"]
    assert (fitted["avengers"] / "arrays.npz").is_file()
    assert not [p for p in fitted["avengers"].parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


@pytest.mark.parametrize("method", METHODS)
def test_eval_json_has_the_documented_keys(fitted, split_files, method):
    _train, test = split_files
    r = run_cli("route", "eval", "--router", str(fitted[method]), "--records", str(test), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(res) == {"accuracy", "avg_cost", "random", "best_single", "oracle", "gap_closed", "n"}
    assert res["n"] == 200
    assert res["oracle"] >= res["best_single"] and res["oracle"] >= res["accuracy"]
    assert 0.0 <= res["accuracy"] <= 1.0 and 7 <= res["avg_cost"] <= 70
    # a fitted router is far better than chance on this data
    assert res["accuracy"] > res["random"]
    expected_gap = (res["accuracy"] - res["best_single"]) / (res["oracle"] - res["best_single"])
    assert res["gap_closed"] == pytest.approx(expected_gap)


def test_eval_table(fitted, split_files):
    r = run_cli("route", "eval", "--router", str(fitted["avengers"]), "--records", str(split_files[1]))
    assert r.returncode == 0, r.stderr
    for word in ("router", "random", "best single", "oracle", "gap closed"):
        assert word in r.stdout


def test_cost_aware_router_is_cheaper(fitted, split_files):
    res = {}
    for m in ("avengers", "avengers-pro"):
        r = run_cli("route", "eval", "--router", str(fitted[m]), "--records", str(split_files[1]), "--json")
        res[m] = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["avengers-pro"]["avg_cost"] < res["avengers"]["avg_cost"]


def test_explain_shows_clusters_scores_and_choice(fitted):
    r = run_cli("route", "explain", "--router", str(fitted["avengers"]), "--json",
                "Janet has 3 apples and buys 5 more. How many apples does she have?")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(d["details"]["clusters"]) == 3
    dists = [c["distance"] for c in d["details"]["clusters"]]
    assert dists == sorted(dists)
    assert sum(c["weight"] for c in d["details"]["clusters"]) == pytest.approx(1.0)
    assert d["chosen"] == d["ranked"][0][0] and len(d["ranked"]) == 9
    table = run_cli("route", "explain", "--router", str(fitted["avengers"]), "What is the capital of Peru?")
    assert table.returncode == 0
    assert "nearest clusters" in table.stdout and "chosen:" in table.stdout


@pytest.mark.parametrize("args,needle", [
    (["route", "fit", "--records", "/nonexistent.json", "--method", "avengers", "--out", "X"], "records file not found"),
    (["route", "fit", "--records", "{train}", "--method", "bogus", "--out", "X"], "unknown routing method"),
    (["route", "fit", "--records", "{bad}", "--method", "knn", "--out", "X"], "no 'scores'"),
    (["route", "fit", "--records", "{garbage}", "--method", "knn", "--out", "X"], "garbage.jsonl:2: not valid JSON"),
    (["route", "fit", "--records", "{train}", "--method", "knn", "--out", "X", "--clusters", "8"], "takes no --clusters"),
    (["route", "fit", "--records", "{train}", "--method", "knn", "--out", "X", "--costs", "{partial}"], "no cost for model"),
    (["route", "eval", "--router", "/nonexistent", "--records", "{train}"], "no router artifact"),
    (["route", "fit", "--records", "{train}", "--method", "avengers", "--out", "X", "--cost-source", "table"],
     "takes no --cost-source"),
    (["route", "fit", "--records", "{train}", "--method", "avengers-pro", "--out", "X", "--cost-source", "realized"],
     "needs records with a realized cost"),
    (["route", "fit", "--records", "{train}", "--method", "knn", "--out", "X", "--embedder", "word2vec"], "unknown embedder"),
])
def test_bad_input_is_a_clear_error(args, needle, split_files, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"question": "q", "answer": "a"}]))
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('{"question": "q", "scores": {"a": 1}}\nthis is not json\n')
    partial = tmp_path / "costs.json"
    partial.write_text(json.dumps({"qwen2.5-7b-instruct": 7}))
    args = [a.format(train=split_files[0], bad=bad, garbage=garbage, partial=partial).replace("X", str(tmp_path / "out")) for a in args]
    r = run_cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "out").exists()


def test_fit_defaults_to_the_records_realized_costs(tmp_path):
    recs = tmp_path / "calibrated.jsonl"
    qs = ["What is 2 + 2?", "Name a prime number.", "What is the capital of Peru?", "Spell 'cat' backwards."]
    recs.write_text("".join(json.dumps({"question": q, "scores": {"a": 1, "b": i % 2},
                                        "usage": {"a": {"completion_tokens": 90, "cost": 3.0},
                                                  "b": {"completion_tokens": 10, "cost": 1.0}}}) + "\n"
                            for i, q in enumerate(qs)))
    r = run_cli("route", "fit", "--records", str(recs), "--method", "avengers-pro", "--out", str(tmp_path / "r"),
                "--embedder", "static", "--clusters", "2", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["cost_source"] == "realized"
    meta = json.loads((tmp_path / "r" / "router.json").read_text())
    assert meta["costs"] == {"a": 3.0, "b": 1.0}  # no --costs: each model's mean realized cost
