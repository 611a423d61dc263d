"""junto.thinking: reasoning split from the answer, whole and streamed; the CLI's display of it."""

from __future__ import annotations

import json
import time

import pytest
from helpers import run_cli, stub_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from junto.errors import ConfigError
from junto.pool.types import Usage
from junto.thinking import Split, ThinkingStream, estimate_tokens, split, split_stream

O, C = "<think>", "</think>"


# -- the cases -------------------------------------------------------------------------------------

def test_no_tags_is_all_answer_unchanged():
    for mode in ("open", "auto"):
        assert split("  The answer is 4.\n", mode=mode) == Split(None, "  The answer is 4.\n")
    assert split("") == Split(None, "")


def test_open_close_then_answer_with_whitespace():
    s = split("\n <think>\n  2+2 is 4.\n</think>\n\nThe answer is 4.")
    assert s.reasoning == "2+2 is 4." and s.content == "The answer is 4." and not s.truncated
    raw = "<think>a</think>  b"
    assert split(raw).cut == raw.index("b")


def test_close_tag_alone_splits_when_the_prompt_opened_the_thinking():
    raw = "Let me add: 2+2=4.\n</think>\n\n4"
    assert split(raw, mode="auto") == Split("Let me add: 2+2=4.", "4", cut=len(raw) - 1)
    assert split(raw, mode="inside").content == "4"
    # mode open (a deployment without a thinking block): a stray close tag is just text
    assert split(raw, mode="open") == Split(None, raw)


def test_open_without_close_is_truncated_thinking():
    s = split("<think>I need to count the apples, there are", mode="auto")
    assert s.reasoning == "I need to count the apples, there are" and s.content == "" and s.truncated
    # inside: no tag at all is all reasoning, cut
    s = split("still thinking", mode="inside")
    assert s == Split("still thinking", "", truncated=True, cut=len("still thinking"))


def test_only_the_first_close_and_a_leading_open_count():
    s = split("<think>a</think>b</think><think>c</think>")
    assert s.reasoning == "a" and s.content == "b</think><think>c</think>"
    assert split("Sure. <think>x</think> y", mode="open") == Split(None, "Sure. <think>x</think> y")


def test_custom_tags_and_bad_tags():
    assert split("[[r]]why[[/r]]so", "[[r]]", "[[/r]]") == Split("why", "so", cut=len("[[r]]why[[/r]]"))
    with pytest.raises(ConfigError) as err:
        split("x", "", "</t>")
    assert err.value.param == "thinking"
    with pytest.raises(ConfigError, match="unknown thinking mode"):
        ThinkingStream(mode="sometimes")  # type: ignore[arg-type]


def test_tags_split_across_chunks_stream_in_order():
    chunks = ["<thi", "nk>Two", " plus two", " is four.</th", "ink>", "\n\n", "4", "."]
    pieces, result = split_stream(chunks)
    assert pieces == [("reasoning", "Two"), ("reasoning", " plus two"), ("reasoning", " is four."),
                      ("content", "4"), ("content", ".")]
    assert result == split("".join(chunks))


def test_plain_answer_streams_without_delay_in_open_mode():
    s = ThinkingStream(mode="open")
    assert s.feed("Paris") == [("content", "Paris")]  # not a prefix of <think>: released at once
    assert s.feed(" is") == [("content", " is")]
    s = ThinkingStream(mode="open")
    assert s.feed("<th") == []  # may be the open tag: held
    assert s.feed("e end") == [("content", "<the end")]


def test_usage_adds_reasoning_tokens():
    a = Usage(10, 20)
    b = Usage(5, 30, reasoning_tokens=25, reasoning_estimated=True)
    assert (a + a).reasoning_tokens is None
    s = a + b
    assert (s.prompt_tokens, s.completion_tokens, s.reasoning_tokens, s.reasoning_estimated) == (15, 50, 25, True)
    assert (b + Usage(0, 4, reasoning_tokens=3)).reasoning_tokens == 28


def test_estimate_is_proportional_to_the_thinking_span():
    raw = "<think>" + "x" * 85 + "</think>" + "y" * 100
    s = split(raw)
    assert estimate_tokens(s, raw, 60) == 30  # 100 of 200 characters are the thinking span
    assert estimate_tokens(split("plain"), "plain", 7) == 0


# -- stream equals one-shot, in linear time -------------------------------------------------------

MAX_CHARS = 20_000
_SETTINGS = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.large_base_example])
# text built from pieces of the tags, whitespace and words: the shapes that break tag matching
_units = st.sampled_from([O, C, "<", "</", "<th", "<think", "</think", "think>", ">", " ", "\n", "\t", "a",
                          "answer", "<<think>", "</</think>", "x" * 50, "é", "🙂"])
_tagged = st.builds(lambda us, n: ("".join(us) * n)[:MAX_CHARS], st.lists(_units, min_size=1, max_size=40),
                    st.integers(1, 2_000))
_texts = _tagged | st.text(max_size=300) | st.builds(lambda a, b, c: a + O + b + C + c, st.text(max_size=50),
                                                     st.text(max_size=500), st.text(max_size=50))


def _chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    out, last = [], 0
    for p in points + [len(text)]:
        out.append(text[last:p])
        last = p
    return out


@_SETTINGS
@given(_texts, st.lists(st.integers(0, MAX_CHARS), max_size=300), st.sampled_from(["open", "auto", "inside"]))
def test_stream_equals_one_shot_for_any_chunking(text, cuts, mode):
    whole = split(text, mode=mode)
    pieces, streamed = split_stream(_chunked(text, cuts), mode=mode)
    assert streamed == whole
    assert "".join(t for k, t in pieces if k == "content") == whole.content
    assert "".join(t for k, t in pieces if k == "reasoning") == (whole.reasoning or "")
    if whole.reasoning is not None:  # the thinking span and the answer make up the raw text
        assert text[whole.cut:] == whole.content


@_SETTINGS
@given(_tagged, st.sampled_from(["open", "auto", "inside"]))
def test_adversarial_text_char_by_char_is_linear(text, mode):
    t0 = time.perf_counter()
    split(text, mode=mode)
    s = ThinkingStream(mode=mode)
    for ch in text:
        s.feed(ch)
    s.finish()
    assert time.perf_counter() - t0 < 1.0, f"{len(text)} chars took {time.perf_counter() - t0:.2f}s"


@pytest.mark.parametrize("unit", [" ", "<", "</thin", "<think", "\n</", "a "])
@pytest.mark.parametrize("mode", ["open", "auto", "inside"])
def test_full_length_runs_char_by_char(unit, mode):
    for text in (unit * (MAX_CHARS // len(unit)), O + unit * (MAX_CHARS // len(unit))):
        t0 = time.perf_counter()
        s = ThinkingStream(mode=mode)
        for ch in text:
            s.feed(ch)
        s.finish()
        assert s.result == split(text, mode=mode)
        assert time.perf_counter() - t0 < 1.0


# -- the CLI (a real `junto chat` process against a real loopback stub that thinks) ----------------

REASONING = "The user asks for 2 + 2. Two plus two is four; 3 would be wrong."


@pytest.fixture(scope="module")
def thinking_pool(tmp_path_factory):
    with stub_server(mode="think") as (url, _):
        pool = tmp_path_factory.mktemp("think") / "thinking.yaml"
        pool.write_text(f"name: t\ndeployments:\n  - {{name: thinker, backend: openai, model: m, url: '{url}'}}\n")
        yield str(pool)


def test_cli_shows_thinking_dimmed_on_stderr_and_the_answer_on_stdout(thinking_pool):
    proc = run_cli("chat", "--pool", thinking_pool, "What is 2 + 2?")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "The answer is 4.\n"  # the answer alone: `junto chat q > file` keeps no thinking
    assert f"thinking: {REASONING}\n" in proc.stderr
    assert "thinking) ·" in proc.stderr  # the footer counts the thinking tokens
    assert "Traceback" not in proc.stderr


def test_cli_hide_thinking(thinking_pool):
    proc = run_cli("chat", "--pool", thinking_pool, "--hide-thinking", "What is 2 + 2?")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "The answer is 4.\n"
    assert "Two plus two" not in proc.stderr and "thinking:" not in proc.stderr


def test_cli_json_has_reasoning_content(thinking_pool):
    proc = run_cli("chat", "--pool", thinking_pool, "--json", "What is 2 + 2?")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["answer"] == out["text"] == "The answer is 4."
    assert out["reasoning_content"] == REASONING
    u = out["usage"]
    assert 0 < u["reasoning_tokens"] < u["completion_tokens"] and u["reasoning_estimated"] is True


def test_cli_session_shows_the_thinking_of_each_answer(thinking_pool):
    proc = run_cli("chat", "--pool", thinking_pool, input="What is 2 + 2?\nAnd 3 + 3?\n/exit\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("The answer is 4.") == 2 and "Two plus two" not in proc.stdout
    assert proc.stderr.count(f"thinking: {REASONING}") == 2


def test_votes_read_the_answer_not_the_thinking(thinking_pool):
    """Self-consistency over a thinking deployment: each sample's text is its answer part; the usage counts the
    thinking tokens of every sample."""
    proc = run_cli("chat", "--pool", thinking_pool, "--strategy", "sc", "--samples", "3", "--param", "answer=number",
                   "--json", "What is 2 + 2?")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["votes"] == {"4": 3.0} and out["answer"] == "4"
    assert out["text"] == "The answer is 4."  # the carrier sample's answer, its thinking split off
    assert out["usage"]["reasoning_tokens"] > 0 and out["usage"]["reasoning_estimated"] is True


def test_cli_says_when_the_thinking_was_cut(thinking_pool):
    proc = run_cli("chat", "--pool", thinking_pool, "--max-tokens", "10", "What is 2 + 2?")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "\n"  # no answer
    assert "thinking: The user asks for 2 +\n" in proc.stderr
    assert "the thinking was cut by max tokens" in proc.stderr
