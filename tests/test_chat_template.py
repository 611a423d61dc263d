"""Chat templates read from the model files and rendered by junto equal llama-server's own rendering.

Real servers, real models: SmolLM2-135M (the session's embedded server) and Qwen2.5-Coder-0.5B (a llama-server
started here from a small pool file). llama-server renders with ``POST /apply-template`` on its root URL; when
the conversation ends with an assistant message it renders it as a prefill (the prompt ends with its text), which
is what ``continue_final`` must produce.
"""

from __future__ import annotations

import httpx
import pytest

from junto.errors import ConfigError
from junto.pool.chat_template import ChatTemplate, for_deployment, from_gguf, from_hf_dir, render
from junto.pool.models import resolve_model_file

CONVO = [
    {"role": "system", "content": "You are terse. Answer in one line."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And the capital of France? Say it with \"quotes\" & <tags>."},
]
NO_SYSTEM = [{"role": "user", "content": "Hi there"}]
PREFILL = [*CONVO, {"role": "assistant", "content": "<think>\nThe user asks about France.\n</think>\n\nThe capital is"}]


def server_render(base_url: str, messages, **kw) -> str:
    root = base_url.rstrip("/").removesuffix("/v1")
    r = httpx.post(f"{root}/apply-template", json={"messages": messages, **kw}, timeout=30)
    r.raise_for_status()
    return r.json()["prompt"]


def server_props(base_url: str) -> dict:
    return httpx.get(base_url.rstrip("/").removesuffix("/v1") + "/props", timeout=30).json()


@pytest.fixture
def qwen_server(qwen05_pool):
    """The session's Qwen2.5-Coder-0.5B llama-server (tests/conftest.py): (pool, its base URL)."""
    pool, endpoints = qwen05_pool
    return pool, endpoints[pool.deployments[0].name]


def test_gguf_template_is_the_one_the_server_uses(embedded_pool):
    pool, endpoints = embedded_pool
    dep = pool.deployments[0]
    tmpl = from_gguf(resolve_model_file(dep.model))
    props = server_props(endpoints[dep.name])
    assert tmpl.template == props["chat_template"]
    assert (tmpl.bos_token, tmpl.eos_token) == (props["bos_token"], props["eos_token"]) == ("<|im_start|>",
                                                                                             "<|im_end|>")
    assert tmpl.add_bos is False
    assert for_deployment(dep) == tmpl  # cached: the same object's value


@pytest.mark.parametrize("messages", [CONVO, NO_SYSTEM], ids=["sys-user-asst-user", "user-only"])
def test_render_equals_llama_server_smollm2(embedded_pool, messages):
    pool, endpoints = embedded_pool
    dep = pool.deployments[0]
    tmpl = for_deployment(dep)
    mine = tmpl.render(messages, add_generation_prompt=True)
    assert mine == server_render(endpoints[dep.name], messages)
    assert mine.endswith("<|im_start|>assistant\n") and messages[-1]["content"] in mine
    # without the generation prompt the prompt ends with the last turn's end
    assert server_render(endpoints[dep.name], messages, add_generation_prompt=False) == tmpl.render(messages)


def test_continue_final_equals_llama_server_prefill_smollm2(embedded_pool):
    pool, endpoints = embedded_pool
    dep = pool.deployments[0]
    tmpl = for_deployment(dep)
    mine = tmpl.render(PREFILL, continue_final=True)
    assert mine == server_render(endpoints[dep.name], PREFILL)
    assert mine.endswith(PREFILL[-1]["content"]) and not mine.endswith("<|im_end|>\n")
    assert mine == tmpl.render(CONVO, add_generation_prompt=True) + PREFILL[-1]["content"]


def test_render_equals_llama_server_qwen(qwen_server):
    pool, url = qwen_server
    dep = pool.deployments[0]
    tmpl = for_deployment(dep)
    # the server stores it without the file's final newline (jinja drops one trailing newline anyway)
    assert tmpl.template.rstrip("\n") == server_props(url)["chat_template"].rstrip("\n")
    assert "Qwen" in tmpl.template  # its own template (a default system prompt naming the model)
    for messages in (CONVO, NO_SYSTEM):
        mine = tmpl.render(messages, add_generation_prompt=True)
        assert mine == server_render(url, messages)
        assert mine.endswith("<|im_start|>assistant\n")
    assert "You are Qwen" in tmpl.render(NO_SYSTEM, add_generation_prompt=True)
    # a prefill with a trailing newline keeps it: the prompt ends exactly with the text written
    prefill = [*CONVO, {"role": "assistant", "content": "Let me think.\n"}]
    mine = tmpl.render(prefill, continue_final=True)
    assert mine == server_render(url, prefill) and mine.endswith("<|im_start|>assistant\nLet me think.\n")


def test_hf_dir_template_equals_the_gguf_one():
    from junto.pool.convert import converted_dir, is_converted

    if not is_converted("smollm2-135m-instruct"):
        pytest.skip("the converted SmolLM2 directory is missing: junto models convert smollm2-135m-instruct")
    hf = from_hf_dir(converted_dir("smollm2-135m-instruct"))
    gg = from_gguf(resolve_model_file("embedded:smollm2-135m-instruct"))
    assert hf.template == gg.template and hf.bos_token == gg.bos_token and hf.eos_token == gg.eos_token
    assert hf.render(CONVO, add_generation_prompt=True) == gg.render(CONVO, add_generation_prompt=True)


# -- the renderer itself, on small real templates ------------------------------------------------------
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
#: as DeepSeek-R1's template does: an assistant turn's thinking is dropped from the history
DROPS_THINKING = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'assistant' %}"
                  "{% set c = m['content'].split('</think>')[-1] %}<A>{{ c }}<E>{% else %}<U>{{ m['content'] }}"
                  "{% endif %}{% endfor %}{% if add_generation_prompt %}<A><think>\n{% endif %}")


def test_continue_final_when_the_template_rewrites_the_message():
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>\nplan\n</think>\n\nSo"}]
    out = render(msgs, DROPS_THINKING, bos_token="<s>", continue_final=True)
    # the whole prefill, thinking included, follows the assistant header as written
    assert out == "<s><U>q<A><think>\nplan\n</think>\n\nSo"


def test_continue_final_keeps_the_text_exactly_and_the_last_occurrence():
    msgs = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hello"}]
    assert render(msgs, CHATML, continue_final=True) == "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHello"
    msgs[-1]["content"] = "  spaced  \n"
    assert render(msgs, CHATML, continue_final=True).endswith("<|im_start|>assistant\n  spaced  \n")


def test_completion_prompt_drops_a_bos_the_server_adds_itself():
    t = ChatTemplate("{{ bos_token }}{{ messages[0]['content'] }}", bos_token="<s>", add_bos=True)
    assert t.render([{"role": "user", "content": "x"}]) == "<s>x"
    assert t.completion_prompt([{"role": "user", "content": "x"}]) == "x"
    t = ChatTemplate(t.template, bos_token="<s>", add_bos=False)
    assert t.completion_prompt([{"role": "user", "content": "x"}]) == "<s>x"


def test_helpers_and_hf_conventions():
    tmpl = "{{ strftime_now('%Y') | length }}|{{ {'a': '<b>&é'} | tojson }}|{% for i in range(5) %}{% if i > 1 %}{% break %}{% endif %}{{ i }}{% endfor %}"
    assert render([], tmpl) == '4|{"a": "<b>&é"}|01'
    # trim_blocks / lstrip_blocks as Hugging Face: block tags leave no newline or indentation behind
    assert render([{"role": "user", "content": "x"}], "{% for m in messages %}\n  {{ m.content }}\n{% endfor %}") == "  x\n"


@pytest.mark.parametrize("template,needle", [
    ("{{ raise_exception('roles must alternate') }}", "roles must alternate"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "refused"),  # the sandbox blocks it
    ("{% for m in messages %}", "does not parse"),
])
def test_template_errors_are_config_errors(template, needle):
    with pytest.raises(ConfigError) as e:
        render([{"role": "user", "content": "x"}], template)
    assert needle in str(e.value)


def test_continue_final_needs_a_final_assistant_message():
    with pytest.raises(ConfigError, match="end with an assistant message"):
        render([{"role": "user", "content": "x"}], CHATML, continue_final=True)
    with pytest.raises(ConfigError, match="exclude each other"):
        render([{"role": "assistant", "content": "x"}], CHATML, continue_final=True, add_generation_prompt=True)


def test_missing_template_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no tokenizer_config.json"):
        from_hf_dir(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"bos_token": {"content": "<s>"}}')
    with pytest.raises(ConfigError, match="carries no chat template"):
        from_hf_dir(tmp_path)
    (tmp_path / "chat_template.jinja").write_text(CHATML)
    t = from_hf_dir(tmp_path)
    assert t.template == CHATML and t.bos_token == "<s>"
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(ConfigError, match="not a readable GGUF"):
        from_gguf(bad)
    with pytest.raises(ConfigError, match="cannot read the GGUF"):
        from_gguf(tmp_path / "missing.gguf")
