"""Monitor fixtures: items of the labelled set's test split, and a gateway with the classifier monitor on."""

from __future__ import annotations

import pytest
from helpers import serve
from junto.monitors import evaluate

#: a test-split decomposition attack (its goal is in no other split) and a test-split benign conversation
ATTACK_ID, BENIGN_ID = "attack-12", "benign-002"


def item(item_id: str) -> dict:
    (row,) = [r for r in evaluate.load("test") if r["id"] == item_id]
    return row


@pytest.fixture(scope="module")
def attack() -> dict:
    return item(ATTACK_ID)


@pytest.fixture(scope="module")
def benign() -> dict:
    return item(BENIGN_ID)


@pytest.fixture(scope="module")
def monitored_gateway(embedded_pool, tmp_path_factory):
    """`junto serve` with the classifier monitor on: block by default, flag for requests to smollm2-135m."""
    tmp = tmp_path_factory.mktemp("gw-monitor")
    cfg = {"pool": "embedded", "gateway": {"max_tokens_limit": 8},
           "monitor": {"kind": "classifier", "action": "block", "models": {"smollm2-135m": "flag"}}}
    with serve(cfg, tmp) as (url, proc):
        yield url, proc
