"""Routing decision latency on this machine: with and without the embedding, single queries and batches,
MiniLM beside the static (model2vec) embedding distilled from it.

    python bench/bench_route_latency.py

Each router is fit on all 5,608 queries of the shared routing data (fitting is not what is timed).
Queries are 300 questions from that data, routed one at a time after a warm-up: ``route(query)``
(embedding + decision) and ``route_embeddings(vector)`` (decision only), then in batches of 64
(per-query time = batch time / 64). Accuracy beside each embedder comes from the 5-fold CV run
(bench/results/route_cv.json), when present.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, save, summary_ms  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("JUNTO_ROUTING_DATA", ROOT.parent / "shared" / "data" / "routing"))
COSTS = ROOT / "configs" / "costs" / "routing-data.json"
N_QUERIES = 300
BATCH = 64


def timed(fn, items):
    out = []
    for it in items:
        t0 = time.perf_counter()
        fn(it)
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from junto.routers.base import load_costs, load_records, router_class
    from junto.routers.embeddings import embed, get_embedder

    records = load_records(DATA / "routing_train.json")
    costs = load_costs(COSTS, records.models)
    rng = np.random.default_rng(0)
    sample = [records.questions[i] for i in rng.choice(len(records), N_QUERIES, replace=False)]
    cv = {}
    cv_path = RESULTS / "route_cv.json"
    if cv_path.is_file():
        cv = json.loads(cv_path.read_text())["results"]["table"]

    results: dict = {"n_queries": N_QUERIES, "batch": BATCH, "routers": {}}
    for spec in ("minilm", "static"):
        emb_model = get_embedder(spec)
        emb_model.warm()
        vectors = embed(records.questions, emb_model)
        qvecs = embed(sample, emb_model)
        # the embedding alone, for reference
        for q in sample[:20]:
            emb_model.encode_one(q)
        results[f"embedding_only[{spec}]"] = summary_ms(timed(emb_model.encode_one, sample))
        for method in ("avengers", "avengers-pro", "knn", "mlp", "svm"):
            router = router_class(method).fit(records, vectors, costs, embedder_spec=emb_model.spec)
            router._embedder = emb_model
            for q in sample[:20]:  # warm-up
                router.route(q)
            with_emb = timed(router.route, sample)
            without = timed(lambda v: router.route_embeddings(v), qvecs)
            batches = [sample[i:i + BATCH] for i in range(0, N_QUERIES - BATCH + 1, BATCH)]
            vbatches = [qvecs[i:i + BATCH] for i in range(0, N_QUERIES - BATCH + 1, BATCH)]
            batch_with = [t / BATCH for t in timed(router.route_batch, batches)]
            batch_without = [t / BATCH for t in timed(router.route_embeddings, vbatches)]
            row = {
                "single_with_embedding": summary_ms(with_emb),
                "single_without_embedding": summary_ms(without),
                "batch64_per_query_with_embedding": summary_ms(batch_with),
                "batch64_per_query_without_embedding": summary_ms(batch_without),
            }
            key = f"{method}[{spec}]"
            if key in cv:
                row["cv_accuracy"] = cv[key]["accuracy"]
                row["cv_avg_cost"] = cv[key]["avg_cost"]
            results["routers"][key] = row
            print(f"{key:24s} single incl. embedding p50 {row['single_with_embedding']['p50_ms']:.3f} ms "
                  f"p99 {row['single_with_embedding']['p99_ms']:.3f} · excl. p50 "
                  f"{row['single_without_embedding']['p50_ms']:.4f} ms p99 {row['single_without_embedding']['p99_ms']:.4f}",
                  flush=True)
    av_static = results["routers"]["avengers[static]"]
    results["targets"] = {
        "p50_incl_embedding_le_2ms[avengers, static]": {
            "p50_ms": av_static["single_with_embedding"]["p50_ms"],
            "met": av_static["single_with_embedding"]["p50_ms"] <= 2.0},
        "p50_excl_embedding_le_0.5ms[avengers, static]": {
            "p50_ms": av_static["single_without_embedding"]["p50_ms"],
            "met": av_static["single_without_embedding"]["p50_ms"] <= 0.5},
        "p50_incl_embedding_le_2ms[avengers, minilm]": {
            "p50_ms": results["routers"]["avengers[minilm]"]["single_with_embedding"]["p50_ms"],
            "met": results["routers"]["avengers[minilm]"]["single_with_embedding"]["p50_ms"] <= 2.0},
    }
    if "avengers[static]" in cv and "avengers[minilm]" in cv:
        results["targets"]["static_accuracy_not_worse_than_minilm[avengers]"] = {
            "static": cv["avengers[static]"]["accuracy"], "minilm": cv["avengers[minilm]"]["accuracy"],
            "met": cv["avengers[static]"]["accuracy"] >= cv["avengers[minilm]"]["accuracy"]}
    # the machine is shared: record how busy it was, since contention inflates torch (MiniLM) timings most
    results["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    save("route_latency", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
