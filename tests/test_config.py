"""Pool configuration: validation errors name the file, the field and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from junto.errors import ConfigError
from junto.pool.config import builtin_pool_names, find_pool_file, load_pool, parse_pool


def write(tmp_path: Path, text: str, name: str = "pool.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_builtin_embedded_pool_loads():
    pool = load_pool("embedded")
    assert "embedded" in builtin_pool_names()
    dep = pool.default_deployment
    assert dep.backend == "llamacpp" and dep.managed
    assert dep.model == "embedded:smollm2-135m-instruct"
    assert dep.launch is not None and dep.launch.n_threads == "auto"


def test_full_pool_roundtrip(tmp_path):
    p = write(tmp_path, """
name: mixed
default: remote
deployments:
  - name: local
    backend: llamacpp
    model: models/x.gguf
    tags: [math]
    price: {input: 0.1, output: 0.2}
  - name: remote
    backend: openai
    model: gpt-x
    url: http://127.0.0.1:9/v1/
    api_key_env: MY_KEY
  - name: claude
    backend: litellm
    model: anthropic/claude-3-haiku
""")
    pool = load_pool(str(p))
    assert pool.default_deployment.name == "remote"
    assert pool.deployment("remote").url == "http://127.0.0.1:9/v1"  # trailing slash dropped
    assert pool.deployment("local").price.cost(1_000_000, 500_000) == pytest.approx(0.2)
    assert pool.resolve_path("models/x.gguf") == p.resolve().parent / "models/x.gguf"
    assert not pool.deployment("claude").managed


@pytest.mark.parametrize(
    "body, expected",
    [
        ("name: x\ndeployments:\n  - name: a\n    backend: foo\n    model: m\n",
         ["deployments[0].backend", "'llamacpp'", "got 'foo'"]),
        ("name: x\ndeployments:\n  - name: a\n    backend: llamacpp\n", ["deployments[0].model", "Field required"]),
        ("name: x\ndeployments:\n  - name: a\n    backend: llamacpp\n    model: m\n    colour: red\n",
         ["deployments[0].colour", "unknown field"]),
        ("name: x\ndeployments:\n  - name: a\n    backend: llamacpp\n    model: m\n    launch: {n_thread: 2}\n",
         ["deployments[0].launch.n_thread", "unknown field"]),
        ("name: x\ndeployments:\n  - name: a\n    backend: llamacpp\n    model: m\n    max_concurrency: 0\n",
         ["deployments[0].max_concurrency", "greater than or equal to 1"]),
        ("name: x\ndeployments:\n  - name: a\n    backend: openai\n    model: m\n", ["needs 'url'"]),
        ("name: x\ndeployments:\n  - name: a\n    backend: openai\n    model: m\n    url: localhost:8000\n",
         ["deployments[0].url", "http://"]),
        ("name: x\ndeployments:\n  - {name: a, backend: openai, model: m, url: 'http://h/v1', launch: {port: 1}}\n",
         ["takes no 'launch'"]),
        ("name: x\ndeployments:\n  - {name: a, backend: llamacpp, model: m}\n  - {name: a, backend: llamacpp, model: n}\n",
         ["'a' appears twice"]),
        ("name: x\ndefault: zz\ndeployments:\n  - {name: a, backend: llamacpp, model: m}\n", ["default 'zz'"]),
        ("name: x\ndeployments: []\n", ["deployments", "at least 1"]),
        ("- just\n- a list\n", ["must be a YAML mapping"]),
    ],
)
def test_invalid_pool_errors_name_file_and_field(tmp_path, body, expected):
    p = write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_pool(str(p))
    text = str(err.value)
    assert str(p) in text
    for fragment in expected:
        assert fragment in text, (fragment, text)
    assert err.value.exit_code == 2 and err.value.hint


def test_malformed_yaml_reports_line(tmp_path):
    p = write(tmp_path, "name: x\ndeployments:\n  - name: a\n   backend: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_pool(str(p))
    assert "malformed YAML" in str(err.value) and "line" in str(err.value)


def test_missing_pool_file_and_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match="pool file not found"):
        find_pool_file(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError) as err:
        find_pool_file("no-such-pool")
    assert "embedded" in err.value.hint


def test_unknown_deployment_lists_choices():
    pool = parse_pool({"name": "x", "deployments": [{"name": "a", "backend": "llamacpp", "model": "m"}]})
    with pytest.raises(ConfigError) as err:
        pool.deployment("b")
    assert "a" in err.value.hint
