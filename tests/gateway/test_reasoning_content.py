"""The gateway's reasoning output (``reasoning_content``, ``completion_tokens_details.reasoning_tokens``) seen
by an unmodified `openai` client: a real loopback stub that answers with fixed ``<think>…</think>answer`` text
(streamed three characters a chunk, so the tags are cut across chunks), and a real llama-server prompted to think.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from helpers import serve, stub_pool, stub_server
from junto.thinking import split

REASONING = "The user asks for 2 + 2. Two plus two is four; 3 would be wrong."
ANSWER = "The answer is 4."
Q = [{"role": "user", "content": "What is 2 + 2?"}]


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def streamed(c: openai.OpenAI, model: str, messages=Q, **kw) -> tuple[list[tuple[str, str]], object]:
    """The stream's pieces in order, as ("reasoning"|"content", text), and its usage."""
    pieces, usage = [], None
    for chunk in c.chat.completions.create(model=model, messages=messages, stream=True,
                                           stream_options={"include_usage": True}, **kw):
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            extra = ch.delta.model_extra or {}
            if extra.get("reasoning_content"):
                pieces.append(("reasoning", extra["reasoning_content"]))
            if ch.delta.content:
                pieces.append(("content", ch.delta.content))
    return pieces, usage


@pytest.fixture(scope="module")
def think_gateway(tmp_path_factory):
    """A gateway over three stub deployments: one thinks (tags in its output), one was opened by its
    template (no open tag; its pool entry says it thinks), one plain."""
    tmp = tmp_path_factory.mktemp("gw-think")
    with stub_server(mode="think") as (thinker, _), stub_server(mode="think_inside") as (inside, _), \
            stub_server() as (plain, _):
        pool = stub_pool(("thinker", thinker), ("plain", plain))
        pool["deployments"].append({"name": "inside", "backend": "openai", "model": "stub", "url": inside,
                                    "connect_retries": 0, "thinking": {}})
        pool["deployments"].append({"name": "inside-undeclared", "backend": "openai", "model": "stub",
                                    "url": inside, "connect_retries": 0})
        with serve({"pool": pool}, tmp) as (url, _):
            yield url


@pytest.mark.parametrize("model", ["thinker", "inside"])
def test_non_streamed_message_carries_reasoning_content(think_gateway, model):
    resp = client(think_gateway).chat.completions.create(model=model, messages=Q)
    msg = resp.choices[0].message
    assert msg.content == ANSWER
    assert msg.model_extra["reasoning_content"] == REASONING
    details = resp.usage.completion_tokens_details
    assert details is not None and 0 < details.reasoning_tokens < resp.usage.completion_tokens
    # the stub cannot tokenize: the count is estimated, and says so
    assert resp.model_extra["junto"]["reasoning_tokens_estimated"] is True


@pytest.mark.parametrize("model", ["thinker", "inside"])
def test_stream_sends_reasoning_then_content(think_gateway, model):
    pieces, usage = streamed(client(think_gateway), model)
    kinds = [k for k, _ in pieces]
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning"), "every reasoning chunk comes before the answer"
    if model == "thinker":
        assert kinds.count("reasoning") > 3, "the reasoning streams in pieces, not at once"
    else:  # no open tag: the text may be the answer until the close tag shows it was thinking (mode auto)
        assert kinds.count("reasoning") == 1 and kinds.count("content") > 1
    assert "".join(t for k, t in pieces if k == "reasoning") == REASONING
    assert "".join(t for k, t in pieces if k == "content") == ANSWER
    assert usage.completion_tokens_details.reasoning_tokens > 0
    assert usage.completion_tokens_details.reasoning_tokens < usage.completion_tokens


def test_plain_answers_have_no_reasoning_fields(think_gateway):
    c = client(think_gateway)
    resp = c.chat.completions.create(model="plain", messages=Q)
    assert "reasoning_content" not in (resp.choices[0].message.model_extra or {})
    assert resp.usage.completion_tokens_details is None
    pieces, usage = streamed(c, "plain")
    assert {k for k, _ in pieces} == {"content"} and usage.completion_tokens_details is None
    # a close tag without an open tag is text of the answer unless the deployment says it thinks
    resp = c.chat.completions.create(model="inside-undeclared", messages=Q)
    assert resp.choices[0].message.content.endswith("</think>\n\n" + ANSWER)


def test_openapi_documents_the_reasoning_fields(think_gateway):
    schemas = httpx.get(f"{think_gateway}/openapi.json").json()["components"]["schemas"]
    assert "reasoning_content" in schemas["AssistantMessage"]["properties"]
    usage = schemas["CompletionUsage"]["properties"]["completion_tokens_details"]
    assert "CompletionTokensDetails" in str(usage)
    assert "reasoning_tokens" in schemas["CompletionTokensDetails"]["properties"]


THINK_PROMPT = "Format: <think>your reasoning</think> your answer"
# one worked example: SmolLM2-135M follows the format from it (seen here: "<think>3 plus 5 is 8.</think> 8")
SHOT = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "<think>2 plus 2 is 4.</think> 4"}]


def test_real_llama_server_prompted_to_think(embedded_pool, tmp_path):
    """SmolLM2-135M may or may not follow the thinking prompt: assert only what holds for any output."""
    pool, endpoints = embedded_pool
    (name, url), = endpoints.items()
    cfg = {"pool": {"name": "thinking-embedded", "deployments": [
        {"name": "thinker", "backend": "llamacpp", "model": pool.deployments[0].model, "url": url,
         "thinking": {"prompt": THINK_PROMPT}}]}}
    msgs = [{"role": "system", "content": THINK_PROMPT}, *SHOT, {"role": "user", "content": "What is 3 + 5?"}]
    with serve(cfg, tmp_path) as (gw, _):
        c = client(gw)
        # the raw text, straight from llama-server (no junto between)
        raw = httpx.post(f"{url}/chat/completions", json={"model": name, "messages": msgs, "max_tokens": 48,
                                                          "temperature": 0, "seed": 1}, timeout=120
                         ).json()["choices"][0]["message"]["content"]
        resp = c.chat.completions.create(model="thinker", messages=msgs, max_tokens=48, temperature=0, seed=1)
        msg = resp.choices[0].message
        expected = split(raw, mode="open")
        print(f"raw llama-server text: {raw!r} -> {expected}")
        assert msg.content == expected.content
        assert (msg.model_extra or {}).get("reasoning_content") == expected.reasoning
        # reasoning tokens: exact on llama-server (its POST /tokenize on the thinking span, tags included)
        span_tokens = None
        if expected.reasoning is not None:
            span_tokens = len(httpx.post(f"{url.removesuffix('/v1')}/tokenize", timeout=30, json={
                "content": raw[:expected.cut], "add_special": False, "parse_special": True}).json()["tokens"])
        details = resp.usage.completion_tokens_details
        assert (details.reasoning_tokens if details is not None else None) == span_tokens
        assert resp.model_extra["junto"].get("reasoning_tokens_estimated", False) is False
        pieces, usage = streamed(c, "thinker", msgs, max_tokens=48, temperature=0, seed=1)
    # the stream's reasoning and content, with the tags put back, are the raw text (modulo whitespace; a
    # thinking cut by max_tokens has no close tag in the raw text)
    kinds = [k for k, _ in pieces]
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning")
    reasoning = "".join(t for k, t in pieces if k == "reasoning")
    content = "".join(t for k, t in pieces if k == "content")
    if "reasoning" in kinds or (expected.reasoning is not None and not content):
        rebuilt, whole = f"<think>{reasoning}</think>{content}", raw if "</think>" in raw else raw + "</think>"
        assert "".join(rebuilt.split()) == "".join(whole.lstrip().split())
    else:
        assert content == raw
    assert usage is not None and usage.completion_tokens >= 1


def test_thinking_cut_by_max_tokens(think_gateway):
    """The stub stops after max_tokens chunks: the thinking never closes; all of it is reasoning, no answer."""
    c = client(think_gateway)
    resp = c.chat.completions.create(model="thinker", messages=Q, max_tokens=10)  # 30 characters
    assert resp.choices[0].finish_reason == "length"
    assert resp.choices[0].message.content == ""
    assert resp.choices[0].message.model_extra["reasoning_content"] == "The user asks for 2 +"
    pieces, usage = streamed(c, "thinker", max_tokens=10)
    assert {k for k, _ in pieces} == {"reasoning"} and "".join(t for _, t in pieces) == "The user asks for 2 +"
    assert usage.completion_tokens_details.reasoning_tokens == usage.completion_tokens == 10


def test_voting_strategy_answers_without_the_thinking(think_gateway):
    c = client(think_gateway)
    resp = c.chat.completions.create(model="junto-sc", messages=Q, extra_body={"junto": {"samples": 2}})
    assert resp.choices[0].message.content == ANSWER
    assert resp.model_extra["junto"]["samples"] == 2
    assert 0 < resp.usage.completion_tokens_details.reasoning_tokens < resp.usage.completion_tokens
    pieces, usage = streamed(c, "junto-sc", extra_body={"junto": {"samples": 2}})
    assert "".join(t for k, t in pieces if k == "content") == ANSWER
    assert usage.completion_tokens_details.reasoning_tokens > 0
