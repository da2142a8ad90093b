"""marketplace/money.py: how staff pages write an amount of fen as yuan."""

import pytest

from marketplace.money import yuan


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
