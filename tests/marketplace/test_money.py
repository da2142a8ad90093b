"""marketplace/money.py: how staff pages write an amount of fen as yuan, and read one back."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.money import parse_yuan, yuan, yuan_label


@pytest.mark.parametrize(
    ("fen", "grouped", "shown"),
    [
        (0, False, "0.00"),
        (5, False, "0.05"),
        (12_345, False, "123.45"),
        (-12_345, False, "-123.45"),
        (-5, False, "-0.05"),
        (123_456_789, False, "1234567.89"),
        (123_456_789, True, "1,234,567.89"),
        (-123_456_789, True, "-1,234,567.89"),
        (None, False, "-"),
    ],
)
def test_yuan(fen, grouped, shown):
    assert yuan(fen, grouped=grouped) == shown


@pytest.mark.parametrize(
    ("fen", "shown"),
    [
        (0, "¥0.00"),
        (1, "¥0.01"),
        (11_111, "¥111.11"),
        (123_456, "¥1,234.56"),
        (100_000_000, "¥1,000,000.00"),
        (-500, "-¥5.00"),
        (None, "-"),
    ],
)
def test_yuan_label(fen, shown):
    assert yuan_label(fen) == shown


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("0", 0),
        ("12", 1200),
        ("12.3", 1230),
        ("12.30", 1230),
        ("0.01", 1),
        ("  1,234.56 ", 123_456),
        ("¥1,234.56", 123_456),
        ("￥88", 8800),
        ("1234567.89", 123_456_789),
        ("007.5", 750),
    ],
)
def test_parse_yuan_reads_what_staff_type(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    "text",
    [
        "12.345",  # a third decimal is refused, never rounded
        "0.001",
        "12.",
        ".5",
        "-5",
        "+5",
        "1e3",
        "12,34",  # a comma that is not a thousands separator
        "1,2345.00",
        "",
        "¥",
        "nan",
        "inf",
        "１２",  # full-width digits
        "١٢",  # Arabic-Indic digits, which int() would accept
        "12 .5",
    ],
)
def test_parse_yuan_refuses_anything_it_would_have_to_guess(text):
    with pytest.raises(ValueError):
        parse_yuan(text)


@given(st.integers(min_value=0, max_value=10**12))
def test_what_staff_read_parses_back_to_the_same_fen(fen):
    assert parse_yuan(yuan_label(fen)) == fen
    assert parse_yuan(yuan(fen)) == fen
