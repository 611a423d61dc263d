"""Generate configs/datasets/arith-easy.jsonl: easy labelled arithmetic, deterministic (fixed seed).

    python configs/datasets/arith_gen.py [--n 40] [--seed 2026] [--out configs/datasets/arith-easy.jsonl]

One-digit additions and subtractions and small multiplications: questions SmolLM2-135M gets right
sometimes, so that voting has something to do. Each line: id, question, answer, kind.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent / "arith-easy.jsonl"


def generate(n: int = 40, seed: int = 2026) -> list[dict]:
    rng = random.Random(seed)
    rows: list[dict] = []
    seen: set[tuple[int, str, int]] = set()
    while len(rows) < n:
        op = rng.choice("++-*")
        if op == "+":
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            value = a + b
        elif op == "-":
            a, b = rng.randint(2, 9), rng.randint(1, 9)
            a, b = max(a, b), min(a, b)
            value = a - b
        else:
            a, b = rng.randint(2, 5), rng.randint(2, 5)
            value = a * b
        if (a, op, b) in seen:
            continue
        seen.add((a, op, b))
        sym = {"+": "+", "-": "-", "*": "×"}[op]
        rows.append({"id": f"arith-{len(rows):03d}", "question": f"What is {a} {sym} {b}? Reply with just the number.",
                     "answer": str(value), "kind": "number"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    text = "".join(json.dumps(r) + "\n" for r in generate(args.n, args.seed))
    tmp = args.out.with_suffix(".jsonl.tmp")
    tmp.write_text(text)
    os.replace(tmp, args.out)
    print(f"wrote {args.n} questions to {args.out}")


if __name__ == "__main__":
    main()
