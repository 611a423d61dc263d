"""Train the classifier monitor: ``python -m junto.monitors.train [--out configs/monitors/classifier.json]``.

Fits :func:`junto.monitors.classifier.fit` on the train split of configs/datasets/monitor, tunes its threshold
for F1 on the validation split, and writes the JSON artifact (weights, threshold, embedder, data and settings).
The test split is not read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from junto.monitors import evaluate
from junto.monitors.base import clip
from junto.monitors.classifier import DEFAULT_ARTIFACT, features, fit


def prefix_scores(rows: list[dict], embedder, coef: np.ndarray, intercept: float) -> list[list[float]]:
    out = []
    for r in rows:
        reqs = r["requests"][: evaluate.turns_to_score(r)]
        vecs = np.asarray(embedder.encode([clip(x) for x in reqs]), dtype=np.float32)
        z = np.array([features(vecs[:k]) @ coef + intercept for k in range(1, len(reqs) + 1)])
        out.append([float(v) for v in 1.0 / (1.0 + np.exp(-z))])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_ARTIFACT)
    ap.add_argument("--embedder", default="static")
    ap.add_argument("--C", type=float, default=1.0)
    args = ap.parse_args(argv)
    from junto.routers.embeddings import get_embedder

    emb = get_embedder(args.embedder)
    train, val = evaluate.load("train"), evaluate.load("validation")
    t0 = time.perf_counter()
    coef, intercept, info = fit(train, emb, C=args.C)
    tau, m = evaluate.tune_threshold(val, prefix_scores(val, emb, coef, intercept))
    data_hash = hashlib.sha256(evaluate.DATASET.read_bytes()).hexdigest()[:16]
    artifact = {
        "kind": "junto.monitors.classifier", "embedder": args.embedder, "features": "mean+max of request vectors",
        "threshold": round(float(tau), 6), "intercept": intercept,
        "trained": {**info, "data": "configs/datasets/monitor/monitor.jsonl", "data_sha256_16": data_hash,
                    "train_items": len(train), "validation_items": len(val), "validation": m,
                    "seconds": round(time.perf_counter() - t0, 2),
                    "command": "python -m junto.monitors.train" + (f" --C {args.C}" if args.C != 1.0 else "")},
        "coef": [round(float(x), 6) for x in coef],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(artifact, indent=1) + "\n")
    print(f"wrote {args.out}: threshold {tau:.4f}, validation {m}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
