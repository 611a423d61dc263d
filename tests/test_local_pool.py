"""The local pool (configs/pools/local.yaml): three real llama.cpp servers, routed over arms by its fitted router."""

from __future__ import annotations

import json

from helpers import run_cli

from junto.pool.config import load_pool


def test_local_pool_routes_to_an_arm_and_answers(state_root):
    """`junto chat -p local` starts the three servers, the pool's router picks an arm, the arm's model answers."""
    pool = load_pool("local")
    arms = {a.name: a for a in pool.arm_list()}
    try:
        proc = run_cli("chat", "-p", "local", "--json", "--max-tokens", "8", "What is 2 + 3? Answer with the number.",
                       timeout=600)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        arm = out["routing"]["arm"]
        assert arm in arms and out["routing"]["router"] == "avengers"
        assert out["routing"]["arms"][0] == arm and set(out["routing"]["arms"]) == set(arms)
        assert out["deployment"] == arms[arm].deployment and out["strategy"] == arms[arm].strategy
        assert out["text"].strip()
    finally:
        run_cli("pool", "down", "--pool", "local")
