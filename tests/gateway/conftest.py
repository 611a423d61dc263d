"""Gateway fixtures: `junto serve` as a real subprocess on loopback."""

from __future__ import annotations

import pytest
from helpers import serve


@pytest.fixture(scope="module")
def embedded_gateway(embedded_pool, tmp_path_factory):
    """The gateway in front of the real embedded llama.cpp server (adopted from the session fixture)."""
    tmp = tmp_path_factory.mktemp("gw")
    with serve({"pool": "embedded", "gateway": {"max_tokens_limit": 24, "max_samples_limit": 2}}, tmp) as (url, proc):
        yield url, proc
