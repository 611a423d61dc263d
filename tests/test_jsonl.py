"""junto.jsonl: the one JSONL reader — lines end at newline only, errors name the file and line."""

from __future__ import annotations

import gzip
import json

import pytest

from junto.errors import ConfigError
from junto.jsonl import read_jsonl


def test_a_line_separator_inside_a_string_does_not_split_the_line(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text(json.dumps({"question": "a\u2028b\u0085c"}, ensure_ascii=False) + "\n\n" + '{"question": "d"}\n',
                 encoding="utf-8")
    rows = read_jsonl(p, required=("question",))
    assert rows == [(1, {"question": "a\u2028b\u0085c"}), (3, {"question": "d"})]


def test_gzip_files_read_the_same(tmp_path):
    p = tmp_path / "q.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write('{"x": 1}\n{"x": 2}\n')
    assert [r for _, r in read_jsonl(p)] == [{"x": 1}, {"x": 2}]


@pytest.mark.parametrize("content, needle", [
    ('{"question": 1}\nnot json\n', "q.jsonl:2: not valid JSON"),
    ('[1, 2]\n', "q.jsonl:1: each line must be a JSON object"),
    ('{"x": 1}\n', "q.jsonl:1: missing field(s) question"),
    ("\n \n", "no rows"),
])
def test_bad_files_name_the_line(tmp_path, content, needle):
    p = tmp_path / "q.jsonl"
    p.write_text(content)
    with pytest.raises(ConfigError) as e:
        read_jsonl(p, required=("question",))
    assert needle in str(e.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read .*no such file"):
        read_jsonl(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    assert read_jsonl(tmp_path / "empty.jsonl", allow_empty=True) == []
