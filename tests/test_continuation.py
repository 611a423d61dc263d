"""Raw completions, assistant prefill and stop-and-continue streams against the real llama-server (SmolLM2-135M).

Greedy decoding (temperature 0) makes the model's answers comparable: a prefilled answer must continue the text
it was given, not restart it, and the continuation of half a greedy answer is the rest of that answer.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from junto.errors import ConfigError
from junto.pool.continuation import Continuation

DEP = "smollm2-135m"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
STORY = [{"role": "user", "content": "Write a short poem about the sea and the sky."}]
GREEDY = {"temperature": 0}


async def test_complete_is_a_raw_completion(embedded_client):
    prompt = "The capital of France is"
    r = await embedded_client.complete(DEP, prompt, max_tokens=6, logprobs=1, **GREEDY)
    assert r.path == "single" and r.requests == 1
    assert "Paris" in r.text and not r.text.startswith(prompt)
    assert r.usage.prompt_tokens == len(await embedded_client.tokenize(DEP, prompt, add_special=True))
    assert r.usage.completion_tokens == 6 == len(r.choices[0].token_logprobs)
    assert all(lp <= 0 for lp in r.choices[0].token_logprobs)


async def test_complete_n_fans_out_on_llama_cpp(embedded_client):
    r = await embedded_client.complete(DEP, "Once upon a time", n=3, max_tokens=8, temperature=0.9, seed=7,
                                       logprobs=1)
    assert r.path == "fanout" and r.requests == 3 and [c.index for c in r.choices] == [0, 1, 2]
    # usage adds up the three requests: one logprob per generated token
    assert r.usage.completion_tokens == sum(len(c.token_logprobs) for c in r.choices) > 3
    assert r.usage.prompt_tokens == 3 * len(await embedded_client.tokenize(DEP, "Once upon a time", add_special=True))
    assert len({c.text for c in r.choices}) > 1, "three seeds, three samples"


async def test_rendered_prompt_completes_like_chat(embedded_client):
    # the raw completion of junto's rendering is the chat endpoint's answer: the same prompt reached the model
    chat = await embedded_client.chat(DEP, FRANCE, max_tokens=24, **GREEDY)
    prompt = await embedded_client.render_prompt(DEP, FRANCE, add_generation_prompt=True)
    raw = await embedded_client.complete(DEP, prompt, max_tokens=24, **GREEDY)
    assert raw.text == chat.text and raw.usage.prompt_tokens == chat.usage.prompt_tokens


async def test_prefill_is_continued_not_restarted(embedded_client):
    prefill = "The capital of France is"
    r = await embedded_client.continue_chat(DEP, FRANCE, prefill, max_tokens=12, **GREEDY)
    assert "Paris" in r.text
    assert "capital of France" not in r.text, f"the prefill was repeated: {r.text!r}"
    assert r.usage.completion_tokens <= 12


@pytest.mark.parametrize("question", ["Name three primary colors.", "Explain what a noun is in one sentence."])
async def test_greedy_continuation_is_the_tail_of_the_greedy_answer(embedded_client, question):
    msgs = [{"role": "user", "content": question}]
    full = (await embedded_client.chat(DEP, msgs, max_tokens=30, **GREEDY)).text
    words = full.split(" ")
    assert len(words) >= 4, full
    prefill = " ".join(words[: len(words) // 2])
    cont = (await embedded_client.continue_chat(DEP, msgs, prefill, max_tokens=8, **GREEDY)).text
    assert cont and full[len(prefill):].startswith(cont), (full, prefill, cont)


async def test_tokenize_counts_like_the_server(embedded_client):
    ids = await embedded_client.tokenize(DEP, "Hello world")
    assert ids == [19556, 905]  # SmolLM2's vocabulary
    assert await embedded_client.tokenize(DEP, "<|im_end|>") == [2]  # special-token text parses as in a prompt


# -- stop-and-continue ---------------------------------------------------------------------------------
def first_line(text: str) -> int | None:
    at = text.find("\n")
    return at + 1 if at >= 0 else None


async def test_stop_at_append_continue_with_exact_counts_and_cache(embedded_client):
    k = Continuation(embedded_client, DEP, STORY, **GREEDY)
    seen = []
    async for d in k.stream(max_tokens=60, stop_at=first_line):
        seen.append(d.text)
    s1 = k.segments[0]
    assert s1.finish_reason == "cut" and s1.text.endswith("\n") and s1.text.count("\n") == 1
    assert "".join(seen) == s1.text == k.text
    k.append("And then,")
    async for _ in k.stream(max_tokens=12):
        pass
    async for _ in k.stream(max_tokens=60, stop=["\n"]):
        pass
    s2, s3 = k.segments[1:]
    assert s2.finish_reason == "length" and s2.completion_tokens == 12
    assert s3.finish_reason == "stop" and s3.text and "\n" not in s3.text
    # the server counts the stop string's token, which it never sends
    assert s3.completion_tokens == len(await embedded_client.tokenize(DEP, s3.text + "\n"))
    assert k.text == s1.text + "And then," + s2.text + s3.text

    # the assistant turn grew in place: each segment's prompt is the one before plus what came after it
    for seg in k.segments:
        # generated tokens, counted per token received, equal the server's tokenization of the text
        # (where it round-trips: the cut segment may end inside its last token)
        if seg.finish_reason == "length":
            assert seg.completion_tokens == len(await embedded_client.tokenize(DEP, seg.text))
    assert 0 < s1.completion_tokens <= 60
    assert k.usage.completion_tokens == sum(s.completion_tokens for s in k.segments)
    assert k.usage.prompt_tokens == sum(s.prompt_tokens for s in k.segments)
    # prompt tokens: the cut segment's from /tokenize, the others from the server's usage: both the prompt's length
    assert s1.prompt_tokens == len(await embedded_client.tokenize(DEP, await embedded_client.render_prompt(
        DEP, STORY, add_generation_prompt=True), add_special=True))
    assert s3.prompt_tokens == s2.prompt_tokens + s2.completion_tokens
    # the server's prompt cache served the resent prompt: after the cut, and after a finished segment
    assert s2.cached_tokens is not None and s2.cached_tokens >= s1.prompt_tokens
    assert s3.cached_tokens is not None and s3.cached_tokens >= s2.prompt_tokens


async def test_cut_from_beside_the_stream(embedded_client):
    k = Continuation(embedded_client, DEP, STORY, **GREEDY)
    got: list[str] = []
    five = asyncio.Event()

    async def verifier():  # runs beside decoding, as TrimR's does
        await five.wait()
        k.cut()

    task = asyncio.create_task(verifier())
    async for d in k.stream(max_tokens=200):
        got.append(d.text)
        if len(got) == 5:
            five.set()
            await asyncio.sleep(0)  # let the verifier run
    await task
    seg = k.segments[0]
    assert seg.finish_reason == "cut" and seg.text == "".join(got)
    assert 5 <= seg.completion_tokens <= 7, seg  # stopped within a token or two, not after 200
    assert seg.completion_tokens == len(got)  # one token per chunk on llama-server


async def test_prefill_then_stream_and_leaving_the_loop(embedded_client):
    k = Continuation(embedded_client, DEP, FRANCE, prefill="The capital of France is", **GREEDY)
    async with contextlib.aclosing(k.stream(max_tokens=30)) as s:
        async for d in s:
            assert d.text
            break  # leave after one token: aclosing ends the segment now
    seg = k.segments[0]
    assert seg.finish_reason == "cut" and seg.completion_tokens == 1
    assert k.text.startswith("The capital of France is") and "Paris" in k.text
    k.append(". Its population is")
    async for _ in k.stream(max_tokens=10):
        pass
    assert k.segments[1].cached_tokens is not None and k.segments[1].cached_tokens >= seg.prompt_tokens
    assert "capital of France" not in k.segments[1].text


async def test_continuation_misuse_is_clear(embedded_client, embedded_pool):
    k = Continuation(embedded_client, DEP, FRANCE)
    with pytest.raises(ValueError, match="per segment"):
        Continuation(embedded_client, DEP, FRANCE, max_tokens=5)
    with pytest.raises(ValueError, match="max_tokens"):
        async for _ in k.stream(max_tokens=0):
            pass
    pool, _ = embedded_pool
    off = pool.deployments[0].model_copy(update={"capabilities": {"prefill": False}})
    with pytest.raises(ConfigError, match="'prefill' on deployment 'smollm2-135m'"):
        Continuation(embedded_client, off, FRANCE, prefill="Sure")
    with pytest.raises(ConfigError, match="'prefill'"):
        await embedded_client.continue_chat(off, FRANCE, "Sure")


async def test_a_server_without_the_endpoint_gives_a_clear_error():
    # a real loopback server that serves chat only; the pool file claims more than it has
    from helpers import stub_server

    from junto.errors import BackendError
    from junto.pool.client import PoolClient
    from junto.pool.config import parse_pool

    with stub_server("ok") as (url, _):
        pool = parse_pool({"name": "stub", "deployments": [
            {"name": "s", "backend": "openai", "model": "stub", "url": url,
             "capabilities": {"completions": True, "tokenize": True, "prefill": True}}]})
        async with PoolClient(pool) as client:
            with pytest.raises(BackendError) as e:
                await client.complete("s", "Hello", max_tokens=4)
            assert e.value.status_code == 404 and str(e.value).startswith("s: server answered HTTP 404")
            with pytest.raises(BackendError, match="HTTP 404"):
                await client.tokenize("s", "Hello")
            k = Continuation(client, "s", FRANCE, prefill="x")  # allowed: it declares prefill and completions …
            with pytest.raises(ConfigError, match="cannot read its chat template"):
                async for _ in k.stream(max_tokens=4):  # … but junto has no template to render it with
                    pass
