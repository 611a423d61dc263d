"""The pool client against the real embedded llama.cpp server, and against misbehaving loopback servers."""

from __future__ import annotations

import time

import pytest
from helpers import free_port, stub_server

from junto.errors import BackendError
from junto.pool.client import PoolClient
from junto.pool.config import parse_pool
from junto.pool.types import StreamDelta, StreamEnd

Q = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def stub_pool(url: str, **extra) -> object:
    return parse_pool({"name": "stub", "deployments": [
        {"name": "s", "backend": "openai", "model": "stub", "url": url, "price": {"input": 2.0, "output": 4.0},
         "connect_retries": 1, **extra}]})


async def test_chat_real_model(embedded_client):
    r = await embedded_client.chat("smollm2-135m", Q, max_tokens=16, temperature=0)
    assert r.path == "single" and r.requests == 1
    assert r.text.strip(), "the model answered"
    assert "paris" in r.text.lower()
    assert r.usage.prompt_tokens > 5 and 0 < r.usage.completion_tokens <= 16
    assert r.cost_usd == 0.0 and r.latency_s > 0


async def test_stream_real_model(embedded_client):
    deltas, ends = [], []
    async for ev in embedded_client.stream("smollm2-135m", Q, max_tokens=16, temperature=0):
        (deltas if isinstance(ev, StreamDelta) else ends).append(ev)
    assert len(deltas) >= 2 and len(ends) == 1
    end = ends[0]
    assert isinstance(end, StreamEnd) and end.ttft_s is not None and end.ttft_s <= end.latency_s
    assert "".join(d.text for d in deltas).strip()
    assert end.usage.completion_tokens >= len(deltas) - 1


async def test_n_is_one_request_on_llama_server_and_every_choice_counts(embedded_client):
    """llama-server decodes n ≤ slots choices from one prefill; its usage counts only the first choice's
    tokens, so the client counts each choice's from its logprobs (every choice here is cut at 5 tokens)."""
    r = await embedded_client.chat("smollm2-135m", [{"role": "user", "content": "Write a long story about a cat."}],
                                   n=3, max_tokens=5, temperature=1.0)
    assert r.path == "native-n" and r.requests == 1 and len(r.choices) == 3
    assert [c.index for c in r.choices] == [0, 1, 2] and [c.finish_reason for c in r.choices] == ["length"] * 3
    assert r.usage.completion_tokens == 15 and not r.usage.estimated


async def test_litellm_path_against_real_server(embedded_pool):
    _, endpoints = embedded_pool
    pool = parse_pool({"name": "via-litellm", "deployments": [
        {"name": "ll", "backend": "litellm", "model": "openai/smollm2-135m", "url": endpoints["smollm2-135m"],
         "price": {"input": 1.0, "output": 1.0}}]})
    async with PoolClient(pool) as client:
        r = await client.chat("ll", Q, max_tokens=8, temperature=0)
        assert r.path == "litellm" and r.text.strip()
        assert r.cost_usd == pytest.approx(r.usage.total_tokens / 1e6)
        text = [ev.text async for ev in client.stream("ll", Q, max_tokens=8, temperature=0) if isinstance(ev, StreamDelta)]
        assert "".join(text).strip()


async def test_native_n_and_cost_from_prices():
    with stub_server(tokens=5) as (url, _):
        async with PoolClient(stub_pool(url)) as client:
            r = await client.chat("s", [{"role": "user", "content": "one two three"}], n=4)
            assert r.path == "native-n" and r.requests == 1 and len(r.choices) == 4
            assert r.usage.prompt_tokens == 3 and r.usage.completion_tokens == 20
            assert r.cost_usd == pytest.approx((3 * 2.0 + 20 * 4.0) / 1e6)


async def test_unreachable_endpoint_retries_then_fails_clearly():
    port = free_port()  # nothing listens here
    async with PoolClient(stub_pool(f"http://127.0.0.1:{port}/v1", connect_retries=2)) as client:
        t0 = time.perf_counter()
        with pytest.raises(BackendError) as err:
            await client.chat("s", Q)
        assert time.perf_counter() - t0 >= 0.25, "two retries with backoff (0.1 s, 0.2 s)"
    assert "cannot connect" in err.value.message and err.value.retryable and "junto pool" in err.value.hint


async def test_hanging_backend_times_out():
    with stub_server(mode="hang") as (url, _):
        async with PoolClient(stub_pool(url, timeout_s=0.5)) as client:
            with pytest.raises(BackendError, match="no answer within"):
                await client.chat("s", Q)
            with pytest.raises(BackendError):
                async for _ in client.stream("s", Q):
                    pass


async def test_garbage_response_is_a_clear_error():
    with stub_server(mode="garbage") as (url, _):
        async with PoolClient(stub_pool(url)) as client:
            with pytest.raises(BackendError, match="malformed response"):
                await client.chat("s", Q)
            with pytest.raises(BackendError, match="malformed stream chunk"):
                async for _ in client.stream("s", Q):
                    pass


async def test_server_error_is_not_retried_but_marked_retryable():
    with stub_server(mode="error500") as (url, proc):
        async with PoolClient(stub_pool(url)) as client:
            with pytest.raises(BackendError) as err:
                await client.chat("s", Q)
    assert err.value.status_code == 500 and err.value.retryable and "stub failure" in err.value.message


async def test_backend_killed_mid_stream():
    with stub_server(mode="die") as (url, proc):
        async with PoolClient(stub_pool(url)) as client:
            got = []
            with pytest.raises(BackendError) as err:
                async for ev in client.stream("s", Q):
                    got.append(ev)
            assert proc.wait(timeout=5) == 3, "the stub process really died"
    assert len(got) >= 1 and all(isinstance(e, StreamDelta) for e in got)
    assert not err.value.retryable, "tokens were already streamed: no silent fallback"
    assert "broke off" in err.value.message or "without finishing" in err.value.message


async def test_no_endpoint_for_deployment():
    pool = parse_pool({"name": "p", "deployments": [{"name": "a", "backend": "llamacpp", "model": "m"}]})
    async with PoolClient(pool, {}) as client:
        with pytest.raises(BackendError, match="no running endpoint"):
            await client.chat("a", Q)
