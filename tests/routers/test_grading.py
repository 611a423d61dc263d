"""The answer graders: pure functions over strings."""

from __future__ import annotations

import pytest

from junto.routers.grading import extract_choice, extract_number, grade, token_f1


@pytest.mark.parametrize("text,letter", [
    ("The answer is (B).", "B"), ("Answer: C", "C"), ("D. Because it is the largest.", "D"),
    ("I would pick option A here", "A"), ("\\boxed{E}", "E"), ("none of these", None),
])
def test_extract_choice(text, letter):
    assert extract_choice(text, 5) == letter


def test_extract_number_forms():
    assert extract_number("It costs $1,234.50 in total") == 1234.5
    assert extract_number("so the answer is 3/4") == 0.75
    assert extract_number("first 3 then \\boxed{17}") == 17
    assert extract_number("-5 degrees") == -5
    assert extract_number("no digits") is None


def test_grade_each_metric():
    assert grade("mc", "Answer: B", "B") == 1.0
    assert grade("mc", "Answer: C", "B") == 0.0
    assert grade("numeric", "12 + 30 = 42", "42") == 1.0
    assert grade("numeric", "41", "42") == 0.0
    assert grade("math", "so we get \\boxed{\\frac{1}{2}}", "0.5") == 1.0
    assert grade("math", "Answer: 81", "81") == 1.0
    assert grade("math", "Answer: 80", "81") == 0.0
    assert grade("exact", "The Paris.", "paris") == 1.0
    assert grade("exact", "Lyon", ["Paris", "paris, france"]) == 0.0
    assert grade("f1", "Paris is the capital", ["Paris"]) == pytest.approx(token_f1("Paris is the capital", "Paris"))
    assert 0 < grade("f1", "Paris is the capital", "Paris") < 1


def test_unknown_metric_is_an_error():
    with pytest.raises(ValueError):
        grade("bleu", "x", "y")
