"""The prompted monitor against a real llama-server running Qwen2.5-Coder-0.5B-Instruct (the local pool's judge).

Only what must hold is asserted: the verdict is a probability in [0, 1] read from the one-token verdict's
logprobs, a reply without logprobs is a clear error, and the guard runs it end to end.
"""

from __future__ import annotations

import math

import pytest
from junto.config import MonitorSettings
from junto.errors import BackendError
from junto.monitors.guard import Guard
from junto.monitors.prompted import PromptedMonitor, messages_for, verdict_probability
from junto.stores.memory_store import InProcessConversations

pytestmark = [pytest.mark.llamacpp, pytest.mark.slow]
JUDGE = "qwen2.5-coder-0.5b"


@pytest.fixture
def judge_pool(qwen05_pool):
    """The session's Qwen2.5-Coder-0.5B server (tests/conftest.py)."""
    return qwen05_pool


@pytest.fixture
async def judge_client(judge_pool):
    from junto.pool.client import PoolClient

    pool, endpoints = judge_pool
    async with PoolClient(pool, endpoints) as client:
        yield client


async def test_verdicts_are_probabilities_from_logprobs(judge_client, attack, benign):
    mon = PromptedMonitor(judge_client, JUDGE, threshold=0.5)
    for reqs in (benign["requests"][:2], attack["requests"][: attack["harmful_step"] + 1]):
        v = await mon.score(reqs)
        assert isinstance(v.probability, float) and 0.0 <= v.probability <= 1.0 and math.isfinite(v.probability)
        assert v.flagged == (v.probability >= 0.5) and v.detail == {"deployment": JUDGE}


async def test_a_reply_without_logprobs_is_a_clear_error(judge_client, attack):
    res = await judge_client.chat(JUDGE, messages_for(attack["requests"][:2]), max_tokens=1, temperature=0)
    with pytest.raises(BackendError) as err:
        verdict_probability(res.choices[0].logprobs)
    assert "no logprobs" in err.value.message and err.value.hint


async def test_guard_with_the_prompted_monitor(judge_client, attack):
    async def ready():
        return judge_client

    g = Guard(MonitorSettings(kind="prompted", deployment=JUDGE, action="log"), InProcessConversations(),
              client=ready, deployments=[JUDGE])
    d = await g.check([{"role": "user", "content": attack["requests"][0]}], header="prompted-1")
    assert d.monitor == "prompted" and 0.0 <= d.probability <= 1.0 and not d.refuse and d.latency_ms > 0
