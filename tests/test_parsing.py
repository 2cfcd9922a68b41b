"""Edge cases of ``scrapers.spiders.parsing`` that the saved pages do not all show."""

from __future__ import annotations

from dataclasses import fields

import pytest
from parsel import Selector

from scrapers.items import TrackItem
from scrapers.spiders.parsing import (
    PageKind,
    ParsedRow,
    classify_page,
    parse_tracklist,
    stated_track_count,
)


@pytest.mark.parametrize(
    ("description", "count"),
    [
        ("tracklist / playlist with 22 tracks, Electronica, Breaks", 22),
        ("Tracklist / playlist for live set X @ Y 25th October 2024 with 52 Techno tracks.", 52),
        ("tracklist / playlist for radio show, 14 tracks, 1 hour 01 minute, Drum & Bass", 14),
        ("with 1 House track.", 1),
        ("The World's Leading DJ Tracklist/Playlist Database", None),
        (None, None),
    ],
)
def test_stated_track_count(description: str | None, count: int | None) -> None:
    assert stated_track_count(description) == count


def row(inner: str, attributes: str = "") -> str:
    return f'<div class="tlpTog bItm tlpItem"{attributes}>{inner}</div>'


def parse(*rows: str) -> list[ParsedRow]:
    html = f"<html><head></head><body>{''.join(rows)}</body></html>"
    return parse_tracklist(Selector(text=html).root, "https://x/tracklist/abc123/x.html").rows


LINE = (
    '<span class="trackValue"><span>Aa</span><span> - </span><span>Bb</span>'
    '<span> (<span class="blueTxt">Cc</span><span class="remixValue"> Remix</span>)</span>'
    "</span>"
)


def test_cue_from_text_when_the_hidden_input_is_missing() -> None:
    [first, second] = parse(
        row(f'<div class="cue">1:02:03</div>{LINE}'),
        row(f'<input id="tlp1_cue_seconds" value="0"><div class="cue">0:00</div>{LINE}'),
    )
    assert first.cue_seconds == 3723
    assert second.cue_seconds == 0  # shown as 0:00: a cue, not "no cue"


def test_line_without_separator_element_splits_on_the_first_dash() -> None:
    [only] = parse(row('<span class="trackValue">Aa - Bb - Cc</span>'))
    assert (only.artist, only.title) == ("Aa", "Bb - Cc")


def test_hostile_values_are_bounded_and_ids_validated() -> None:
    long = "x" * 5000
    [only] = parse(
        row(
            f'<span class="trackValue"><span>{long}</span><span> - </span><span>T</span></span>',
            attributes=' data-trackid="../../etc"',
        )
    )
    assert len(only.artist) == 500
    assert only.site_track_id is None


UNKNOWN = '<span class="trackValue redTxt"><span>ID</span><span> - </span><span>ID</span></span>'


def test_marked_up_remixer_and_unknown_rows() -> None:
    [remix, unknown, partial] = parse(
        row(LINE),
        row(
            '<span class="trackValue redTxt"><span>ID</span><span> - </span><span>ID</span></span>'
        ),
        row('<span class="trackValue"><span>ID</span><span> - </span><span>Song</span></span>'),
    )
    assert remix.title == "Bb (Cc Remix)"
    assert {"name": "Cc", "role": "remixer"} in remix.artists
    assert unknown.is_unknown and not unknown.is_partial_id and unknown.artists == []
    assert partial.is_partial_id and partial.artists == []


def test_scripts_do_not_make_a_page_a_captcha() -> None:
    html = "<html><body><script>var captcha = 1;</script><p>Nothing here</p></body></html>"
    assert classify_page(Selector(text=html).root) == PageKind.EMPTY


def microdata_row(shown_artist: str, meta_name: str) -> str:
    return row(
        f'<div itemprop="tracks" itemscope itemtype="http://schema.org/MusicRecording">'
        f'<meta itemprop="name" content="{meta_name}">'
        f'<span class="trackValue"><span>{shown_artist}</span><span> - </span>'
        f"<span>Long Night Drive</span></span></div>"
    )


@pytest.mark.parametrize(
    ("shown", "meta", "kept"),
    [
        # Cut at the front: a long tail of the visible name names the same artists.
        ("Juno Reyes & Tamsin Cole vs. Orrin Vale", "yes & Tamsin Cole vs. Orrin Vale", None),
        ("Orrin Vale (SE)", "Orrin Vale", None),  # the country tag left out
        ("Orrin Vale (SE) & Kite Theory", "Orrin Vale & Kite Theory", None),
        # A short tail is a different name: a decoy, as is a name that differs outright.
        ("Malok", "Alok", "Alok"),
        ("Pell Garnet", "Juno Reyes", "Juno Reyes"),
    ],
)
def test_cut_or_untagged_microdata_is_not_a_decoy(shown: str, meta: str, kept: str | None) -> None:
    html = f"<html><body>{microdata_row(shown, f'{meta} - Long Night Drive')}</body></html>"
    parsed = parse_tracklist(Selector(text=html).root, "https://x/tracklist/abc123/x.html")
    [only] = parsed.rows
    assert only.artist == (kept or shown)
    assert parsed.decoy_rows == (1 if kept else 0)


def test_a_parsed_row_is_track_item_fields_and_two_page_facts() -> None:
    """The parser's row is typed; everything it hands the spider is a ``TrackItem`` field."""
    [plain] = parse(row(LINE))
    attributes = {attribute.name for attribute in fields(ParsedRow)}
    assert attributes - {"decoy", "mashup_part"} <= TrackItem.fields.keys()
    assert plain.item_fields().keys() == attributes - {"decoy", "mashup_part", "metadata"}
    TrackItem(**plain.item_fields())  # a field the item lacks would raise KeyError
