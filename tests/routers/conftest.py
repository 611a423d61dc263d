"""Fixtures for the router tests: the shared routing data (read in place) and small subsets of it.

The data is found through $JUNTO_ROUTING_DATA, default <repo>/../shared/data/routing; it is never
copied into the repository (its LICENSE travels with it there).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
COSTS = ROOT / "configs" / "costs" / "routing-data.json"


def routing_data_dir() -> Path:
    return Path(os.environ.get("JUNTO_ROUTING_DATA", ROOT.parent / "shared" / "data" / "routing"))


@pytest.fixture(scope="session")
def routing_records() -> list[dict]:
    path = routing_data_dir() / "routing_train.json"
    if not path.is_file():
        pytest.skip(f"shared routing data not found at {path} (set JUNTO_ROUTING_DATA)")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def split_files(routing_records, tmp_path_factory) -> tuple[Path, Path]:
    """A fixed random 400/200 train/test split of the shared data, as a JSON list and as JSONL."""
    rng = np.random.default_rng(7)
    idx = rng.permutation(len(routing_records))
    d = tmp_path_factory.mktemp("routing")
    train, test = d / "train.json", d / "test.jsonl"
    train.write_text(json.dumps([routing_records[i] for i in idx[:400]]))
    test.write_text("".join(json.dumps(routing_records[i]) + "\n" for i in idx[400:600]))
    return train, test


@pytest.fixture(scope="session")
def costs_file() -> Path:
    return COSTS
