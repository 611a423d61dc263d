"""Answer extraction and equivalence: pure functions, no server."""

from __future__ import annotations

import pytest

from junto.reasoning.answers import (answer_keys, canonical, equivalent, extract, extract_choice, extract_math,
                                     extract_number, group_keys, is_correct, last_boxed, normalize_text, parse_number)


class TestBoxed:
    def test_nested_braces_are_matched(self):
        assert last_boxed(r"so \boxed{\frac{1}{2}} done") == r"\frac{1}{2}"

    def test_last_of_several(self):
        assert last_boxed(r"\boxed{3} wait, no: \boxed{4}") == "4"

    def test_fbox_and_unbraced(self):
        assert last_boxed(r"\fbox{7}") == "7"
        assert last_boxed(r"$\boxed 5$") == "5"

    def test_unclosed_or_empty_is_none(self):
        assert last_boxed(r"\boxed{12") is None
        assert last_boxed(r"\boxed{ }") is None
        assert last_boxed("no box here") is None


class TestMath:
    def test_boxed_beats_everything(self):
        assert extract_math(r"The answer is 3. Actually \boxed{4}, not 5") == "4"

    def test_answer_is_phrase(self):
        assert extract_math("I think the answer is 42 apples.") == "42"
        assert extract_math("Final answer: 3.5") == "3.5"
        assert extract_math(r"so the answer is \frac{3}{4}.") == r"\frac{3}{4}"

    def test_last_number_fallback(self):
        assert extract_math("3 + 4 = 7") == "7"
        assert extract_math("no numbers at all") is None

    def test_decimal_point_is_not_sentence_end(self):
        assert extract_math("The answer is 2.5. Next question.") == "2.5"


class TestNumbers:
    @pytest.mark.parametrize("text,value", [
        ("1,234", "1234"), ("1,234.50", "2469/2"), ("-3", "-3"), ("3/4", "3/4"), (r"\frac{3}{4}", "3/4"),
        (r"\frac34", "3/4"), (r"\dfrac{6}{8}", "3/4"), ("12 cm", "12"), ("$5", "5"), ("50%", "50"),
        ("x = 7", "7"), ("0.5", "1/2"), (".5", "1/2"), ("7.", "7"), (r"-\frac{1}{2}", "-1/2"), ("−2", "-2"),
        (r"5\text{ meters}", "5"), ("100 dollars", "100"),
    ])
    def test_parse_number(self, text, value):
        v = parse_number(text)
        assert v is not None, text
        assert (str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}") == value

    @pytest.mark.parametrize("text", ["abc", "", "1/0", "3 apples and 4 pears", r"\frac{1}{0}", "2x+1"])
    def test_not_a_number(self, text):
        assert parse_number(text) is None

    def test_extract_number_reads_separators_and_phrase(self):
        assert extract_number("It costs 1,250 dollars in total.") == "1,250"
        assert extract_number("Step 1: 2+2=4. The answer is 4 cats") == "4"
        assert extract_number("3/4 of the cake") == "3/4"
        assert extract_number("nothing") is None


class TestChoice:
    @pytest.mark.parametrize("text,letter", [
        ("The answer is (C).", "C"), ("Answer: b", "B"), ("I pick (D) because", "D"), ("B. Paris", "B"),
        (r"\boxed{E}", "E"), ("so it must be\nJ", "J"), ("answer is option H", "H"),
    ])
    def test_letters(self, text, letter):
        assert extract_choice(text) == letter

    def test_out_of_range_or_missing(self):
        assert extract_choice("The answer is (K).") is None
        assert extract_choice("no letter here") is None
        assert canonical("K", "choice") is None
        assert canonical("(c)", "choice") == "C"


class TestText:
    def test_normalize(self):
        assert normalize_text("  The Eiffel Tower!  ") == "eiffel tower"
        assert normalize_text("an  apple, a pear") == "apple pear"

    def test_text_kind_votes_normalized(self):
        assert equivalent("The Eiffel Tower.", "eiffel tower", "text")
        assert not equivalent("Eiffel Tower", "Big Ben", "text")


class TestEquivalence:
    def test_half_in_every_spelling_votes_together(self):
        forms = [r"\frac12", "1/2", "0.5", r"\frac{1}{2}", "0.50", r"\dfrac{1}{2}", "$0.5$"]
        keys = {canonical(f, "math") for f in forms}
        assert keys == {"1/2"}
        assert all(equivalent(forms[0], f, "math") for f in forms)

    def test_thousands_and_decimals(self):
        assert canonical("1,000", "number") == canonical("1000.0", "number") == "1000"
        assert not equivalent("1,000", "100", "number")

    def test_symbolic_math_merged_by_math_verify(self):
        keys = group_keys([canonical(r"\frac{\sqrt{2}}{2}", "math"), canonical(r"\frac{1}{\sqrt{2}}", "math"),
                           canonical("3", "math")], "math")
        assert keys[0] == keys[1] != keys[2]

    def test_invalid_never_equal(self):
        assert canonical(None) is None
        assert canonical("   ") is None
        assert canonical("apples", "number") is None
        assert not equivalent(None, None)
        assert not equivalent("", "")

    def test_answer_keys_end_to_end(self):
        texts = [r"So \boxed{\frac12}.", "The answer is 0.5", "1/2", "I don't know", "", None]
        keys = answer_keys(texts, "math")
        assert keys[:3] == ["1/2", "1/2", "1/2"]
        assert keys[3:] == [None, None, None]

    def test_auto_kind(self):
        assert extract(r"thus \boxed{x^2}", "auto") == "x^2"
        assert extract("5 + 2 = 7", "auto") == "7"
        assert extract("Paris, of course!", "auto") == "paris of course"
        assert extract("", "auto") is None
        with pytest.raises(ValueError):
            extract("x", "bogus")  # type: ignore[arg-type]

    def test_is_correct(self):
        assert is_correct("1/2", r"\frac{1}{2}", "math")
        assert is_correct("15", "15", "number")
        assert not is_correct(None, "15", "number")
        assert not is_correct("14", "15", "number")


def test_words_after_answer_is_are_not_a_math_answer():
    assert extract_math("9 + 9 = 10\nThe answer is just a number.") == "10"
    assert extract_math("The answer is x^2 + 1") == "x^2 + 1"
    assert extract_math("The answer is unknown") is None
    assert canonical(extract("The answer is unknown", "math"), "math") is None


def test_auto_free_text_only_when_short():
    assert extract("Paris", "auto") == "paris"
    assert extract("this classic math problem requires careful consideration and correct operation", "auto") is None
    assert extract("this classic math problem requires careful consideration and correct operation", "text")
