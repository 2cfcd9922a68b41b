"""``arrays.text_array``: any text reaches PostgreSQL as itself, one parameter for a whole list."""

from __future__ import annotations

import pytest

from scrapers.db.write.arrays import text_array

AWKWARD = [
    "",
    "NULL",
    "null",
    "plain",
    " spaced ",
    "a,b",
    "{braces}",
    '"quoted"',
    "back\\slash",
    '\\"',
    "tab\tnew\nline\rreturn",
    "'single'",
    "Ünïcödé ß 東京",
    "\\N",
]


@pytest.mark.parametrize("values", [[], [""], ["NULL"], AWKWARD, [*AWKWARD, *AWKWARD]])
def test_every_text_comes_back_as_itself(db, values: list[str]) -> None:
    with db.cursor() as cursor:
        cursor.execute("SELECT %s::text[]", (text_array(values),))
        assert cursor.fetchone()[0] == values


def test_a_nul_byte_is_refused() -> None:
    """It joins the values while they are escaped: a value holding it would split in two."""
    with pytest.raises(ValueError, match="NUL"):
        text_array(["a", "b\x00c"])
