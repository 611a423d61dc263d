"""Deployment capabilities: each backend's defaults, the pool file's overrides, and the errors strategies get."""

from __future__ import annotations

import pytest

from junto.errors import ConfigError
from junto.pool.capabilities import capabilities, defaults, require, who_has
from junto.pool.client import PoolClient
from junto.pool.config import CAPABILITIES, load_pool, parse_pool
from junto.pool.continuation import Continuation


def dep(**kw):
    base = {"name": "d", "backend": "llamacpp", "model": "embedded:smollm2-135m"}
    return parse_pool({"name": "p", "deployments": [{**base, **kw}]}).deployments[0]


def test_backend_defaults():
    assert defaults(dep()) == {"chat", "completions", "prefill", "logprobs", "top_logprobs", "tokenize", "native_n"}
    assert defaults(dep(launch={"server": "llama-cpp-python"})) == {"chat", "completions", "prefill", "logprobs",
                                                                    "top_logprobs"}
    assert defaults(dep(backend="vllm", model="embedded-hf:smollm2-135m-instruct")) == {
        "chat", "completions", "prefill", "logprobs", "top_logprobs", "native_n", "tokenize"}
    assert defaults(dep(backend="openai", model="m", url="http://127.0.0.1:9/v1")) == {"chat", "logprobs"}
    assert defaults(dep(backend="litellm", model="anthropic/claude-x")) == {"chat"}
    # every declared name is a known capability; nobody claims reasoning output by default
    for d in (dep(), dep(backend="vllm", model="x")):
        assert defaults(d) <= set(CAPABILITIES)
    assert who_has("reasoning") == [] and who_has("native_n") == ["llamacpp (llama-server)", "vllm"]
    assert "llamacpp (llama-server)" in who_has("tokenize") and "vllm" in who_has("tokenize")


def test_overrides_from_the_pool_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("name: p\ndeployments:\n"
                 "  - {name: remote, backend: openai, model: m, url: 'http://127.0.0.1:9/v1',\n"
                 "     capabilities: {prefill: true, completions: true, logprobs: false}}\n"
                 "  - {name: local, backend: llamacpp, model: 'embedded:smollm2-135m', capabilities: {prefill: false}}\n")
    pool = load_pool(str(f))
    assert capabilities(pool.deployment("remote")) == {"chat", "prefill", "completions"}
    assert capabilities(pool.deployment("local")) == defaults(pool.deployment("local")) - {"prefill"}


def test_unknown_capability_in_the_pool_file_is_a_config_error(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("name: p\ndeployments:\n"
                 "  - {name: x, backend: llamacpp, model: 'embedded:smollm2-135m', capabilities: {prefil: true}}\n")
    with pytest.raises(ConfigError) as e:
        load_pool(str(f))
    assert "prefil" in str(e.value)


def test_require_names_capability_deployment_and_purpose():
    require(dep(), "prefill", "completions", purpose="strategy 'thoughtmani'")  # has them: no error
    with pytest.raises(ConfigError) as e:
        require(dep(name="planner"), "prefill", "reasoning", purpose="strategy 'thoughtmani'")
    msg = str(e.value)
    assert "'reasoning'" in msg and "'planner'" in msg and "strategy 'thoughtmani'" in msg
    assert "capabilities: {reasoning: true}" in e.value.hint
    assert e.value.param == "deployments[planner].capabilities.reasoning"
    with pytest.raises(ConfigError) as e:
        require(dep(name="p2", launch={"server": "llama-cpp-python"}), "native_n", purpose="strategy 'sc'")
    assert "vllm" in e.value.hint and "llama-server" in e.value.hint


def test_require_says_when_the_pool_file_turned_it_off():
    with pytest.raises(ConfigError) as e:
        require(dep(name="x", capabilities={"prefill": False}), "prefill", purpose="strategy 'trimr'")
    assert "turns it off" in str(e.value) and "'prefill'" in str(e.value)


def test_require_unknown_capability():
    with pytest.raises(ConfigError) as e:
        require(dep(), "telepathy", purpose="a test")
    assert "telepathy" in str(e.value) and "prefill" in e.value.hint


async def test_client_calls_check_capabilities_before_any_request():
    # no server behind these URLs: the capability error comes first, with no network attempt
    pool = parse_pool({"name": "p", "deployments": [
        {"name": "remote", "backend": "openai", "model": "m", "url": "http://127.0.0.1:9/v1"},
        {"name": "claude", "backend": "litellm", "model": "anthropic/claude-x"}]})
    async with PoolClient(pool) as client:
        with pytest.raises(ConfigError, match="'completions' on deployment 'remote'"):
            await client.complete("remote", "Hello")
        with pytest.raises(ConfigError, match="'prefill' on deployment 'claude'"):
            await client.continue_chat("claude", [{"role": "user", "content": "hi"}], "Sure")
        with pytest.raises(ConfigError, match="'tokenize' on deployment 'remote'"):
            await client.tokenize("remote", "Hello")
        with pytest.raises(ConfigError, match="'completions' on deployment 'claude'"):
            Continuation(client, "claude", [{"role": "user", "content": "hi"}])


def test_pool_status_json_lists_capabilities(tmp_path):
    import json

    from helpers import run_cli

    f = tmp_path / "p.yaml"
    f.write_text("name: p\ndeployments:\n"
                 "  - {name: local, backend: llamacpp, model: 'embedded:smollm2-135m', capabilities: {prefill: false}}\n"
                 "  - {name: claude, backend: litellm, model: anthropic/claude-x}\n")
    r = run_cli("pool", "status", "--pool", str(f), "--json", env={"JUNTO_STATE_DIR": str(tmp_path / "state")})
    assert r.returncode == 0, r.stderr
    rows = {row["deployment"]: row for row in json.loads(r.stdout)}
    assert rows["local"]["capabilities"] == ["chat", "completions", "logprobs", "native_n", "tokenize", "top_logprobs"]
    assert rows["claude"]["capabilities"] == ["chat"]
