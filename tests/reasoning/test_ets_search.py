"""ETS and REBASE against a real llama-server (the session's embedded SmolLM2-135M): the tree the search
builds, the KV it reports, the server's cached prompt tokens, and the CLI's progress lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from junto.answers import answer_keys
from junto.reasoning import RunContext, stream_strategy
from junto.reasoning.ets import tree as T

JUNTO = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "junto")
QUESTION = "Tom has 3 bags with 4 apples in each bag. He eats 2 apples. How many apples are left?"
FAST = {"width": 3, "max_depth": 3, "step_tokens": 16, "path_tokens": 256, "seed": 5}


async def run(client, pool, name: str, params: dict):
    ctx = RunContext(client=client, pool=pool, candidates=[pool.default_deployment.name])
    events, result = [], None
    async for ev in stream_strategy(name, ctx, [{"role": "user", "content": QUESTION}], params):
        if ev["type"] == "result":
            result = ev["result"]
        else:
            events.append(ev)
    assert result is not None
    return result, events


def check_tree(result, events, width: int) -> None:
    """What must hold of any search: the tree is consistent with the events, the usage and the selection."""
    x = result.extra
    nodes = x["tree"]
    assert x["failed"] == 0, x["errors"]
    for n in nodes[1:]:
        assert nodes[n["parent"]]["depth"] == n["depth"] - 1
        assert 0.0 <= n["score"] <= 1.0
    # the root gets the whole width
    assert sum(1 for n in nodes if n["parent"] == 0) == width
    steps = [{k: v for k, v in e.items() if k not in ("type", "strategy")} for e in events if e["type"] == "ets_step"]
    assert steps == x["steps"] and len(steps) == x["depth"] >= 1
    for s in steps:
        kept = [nid for nid, _ in s["expand"]]
        assert s["kv_tokens"] == T.kv_tokens(nodes, kept)
        assert s["kept"] + s["pruned"] == s["candidates"]
        # each kept node got exactly the children the selection gave it
        for nid, count in s["expand"]:
            assert sum(1 for n in nodes if n["parent"] == nid) == count
        assert s["expansions"] <= s["width_left"] + s["finished"] or s["expansions"] == 0
    # every generated token is on some node; the root holds the question's prompt
    assert sum(n["tokens"] for n in nodes[1:]) == result.usage.completion_tokens > 0
    assert nodes[0]["tokens"] > 0
    # leaves carry the vote key of their whole path
    for leaf in T.leaves(nodes):
        text = "\n\n".join(T.steps(nodes, leaf))
        assert nodes[leaf]["answer"] == answer_keys([text], "auto")[0]
    assert result.samples == x["leaves"] >= 1


@pytest.mark.llamacpp
async def test_ets_and_rebase_search_a_real_server(embedded_client, embedded_pool):
    pool, _ = embedded_pool
    for name in ("ets", "rebase"):
        result, events = await run(embedded_client, pool, name, FAST)
        assert result.strategy == name and result.extra["selection"] == name
        check_tree(result, events, FAST["width"])
        # llama-server reports the prompt tokens it took from its cache; past the first depth the shared
        # system prompt and question are cached
        x = result.extra
        assert x["cached_tokens"] is not None
        if x["depth"] >= 2:
            assert x["steps"][1]["cached_tokens"] > 0
        assert any(e["type"] == "decision" for e in events)


@pytest.mark.llamacpp
async def test_ets_with_clustering_and_the_judge_free_scorer(embedded_client, embedded_pool):
    """λs > 0 with the static embedder: the diversity term is built from the new steps' clusters."""
    pool, _ = embedded_pool
    result, events = await run(embedded_client, pool, "ets", {**FAST, "width": 4, "max_depth": 2,
                                                              "temperature": 1.2})
    check_tree(result, events, 4)
    first = result.extra["steps"][0]
    if first["candidates"] > 1:
        assert first["ilp_rows"] >= 1 and first["ilp_ms"] > 0
        texts = {n["text"] for n in result.extra["tree"] if n["depth"] == 1 and not n["finished"]}
        # clusters were computed whenever the unfinished steps were not all the same text
        assert (first.get("clusters") is not None) == (len(texts) > 1)


@pytest.mark.llamacpp
def test_cli_chat_shows_the_tree_progress(embedded_pool):
    out = subprocess.run([JUNTO, "chat", "-p", "embedded", "--strategy", "ets", "--param", "width=2",
                          "--param", "max_depth=2", "--param", "step_tokens=12", "--seed", "1", QUESTION],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "ets depth 1: 2 new steps" in out.stderr
    assert "KV " in out.stderr and "tokens retained" in out.stderr
    assert "server cache" in out.stderr
    bad = subprocess.run([JUNTO, "chat", "-p", "embedded", "--strategy", "ets", "--param", "width=0", QUESTION],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "width" in bad.stderr + bad.stdout and "Traceback" not in bad.stderr


@pytest.mark.llamacpp
async def test_the_deadline_ends_the_search(embedded_client, embedded_pool):
    """0.3 s cannot hold one 256-token step: the streams are cancelled at the deadline and the run says so."""
    import time

    from junto.errors import BackendError

    pool, _ = embedded_pool
    ctx = RunContext(client=embedded_client, pool=pool, candidates=[pool.default_deployment.name], deadline_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="no step was sampled \\(deadline\\)"):
        async for _ in stream_strategy("ets", ctx, [{"role": "user", "content": QUESTION}],
                                       {"width": 2, "step_tokens": 256, "system": "Write a long essay."}):
            pass
    assert time.monotonic() - t0 < 5.0


@pytest.mark.llamacpp
async def test_max_samples_caps_the_width(embedded_client, embedded_pool):
    pool, _ = embedded_pool
    ctx = RunContext(client=embedded_client, pool=pool, candidates=[pool.default_deployment.name], max_samples=2)
    events, result = [], None
    async for ev in stream_strategy("rebase", ctx, [{"role": "user", "content": QUESTION}],
                                    {**FAST, "width": 5, "max_depth": 1}):
        events.append(ev)
    result = events[-1]["result"]
    check_tree(result, events[:-1], 2)


def test_finish_rules():
    from junto.reasoning.ets.graph import finish_of
    from junto.reasoning.ets.state import ETSParams

    p = ETSParams(max_depth=3, path_tokens=50)
    nodes = [T.root(10)]
    a = T.add_child(nodes, 0, "First, 3 * 4 = 12.", 20)
    assert finish_of(a, nodes, p) is None
    assert finish_of(T.add_child(nodes, 1, "The answer is: 10", 5), nodes, p) == "answer"
    assert finish_of(T.add_child(nodes, 1, "  ", 1), nodes, p) == "empty"
    assert finish_of(T.add_child(nodes, 1, "Then 12 - 2 = 10.", 30), nodes, p) == "path_tokens"
    b = T.add_child(nodes, 1, "Then 12 - 2 = 10.", 5)
    assert finish_of(T.add_child(nodes, b["id"], "So 10 remain", 5), nodes, p) == "depth"


@pytest.mark.llamacpp
async def test_a_checkpointed_run_round_trips_the_tree(embedded_client, embedded_pool, tmp_path):
    """With a strict SQLite checkpointer the state (tree, params, scorer spec) is serialised after every depth
    (LangGraph writes a checkpoint per superstep): the run goes through and ends with a consistent tree."""
    from junto.stores.checkpoints import Checkpoints

    pool, _ = embedded_pool
    cp = Checkpoints(f"sqlite:///{tmp_path / 'cp.sqlite'}")
    saver = await cp.saver()
    try:
        ctx = RunContext(client=embedded_client, pool=pool, candidates=[pool.default_deployment.name])
        events = [ev async for ev in stream_strategy("ets", ctx, [{"role": "user", "content": QUESTION}],
                                                     {**FAST, "max_depth": 2}, checkpointer=saver,
                                                     thread_id="t-ets")]
        result = events[-1]["result"]
        check_tree(result, events[:-1], FAST["width"])
    finally:
        await cp.aclose()


@pytest.mark.llamacpp
async def test_an_unreachable_server_fails_with_the_cause(embedded_pool):
    """Every step request fails (nothing listens on the port): a BackendError naming the cause, no traceback."""
    import socket

    from junto.errors import BackendError
    from junto.pool.client import PoolClient

    pool, _ = embedded_pool
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = pool.default_deployment.name
    async with PoolClient(pool, {name: f"http://127.0.0.1:{port}/v1"}) as client:
        ctx = RunContext(client=client, pool=pool, candidates=[name])
        with pytest.raises(BackendError, match="no step was sampled \\(backend_error\\); last error") as e:
            async for _ in stream_strategy("ets", ctx, [{"role": "user", "content": QUESTION}], FAST):
                pass
    assert e.value.deployment == name
