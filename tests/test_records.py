"""Validation of single items, without a database: what ``to_record`` refuses and why."""

from __future__ import annotations

from decimal import Decimal

import pytest

from scrapers.db.write import records
from scrapers.db.write.fields import Rejected
from scrapers.enrichment import matching
from scrapers.statuses import EnrichmentStatus


def track(**fields: object) -> dict[str, object]:
    return {"artist_name": "Artist", "track_name": "Title", **fields}


def test_a_number_of_thousands_of_digits_is_an_invalid_value_not_a_crash() -> None:
    # Python refuses to turn more than 4,300 digits into an int (ValueError): that escaped
    # validation and failed the whole batch instead of this one value.
    digits = "9" * 5000
    record = records.to_record(track(bpm=digits, duration_ms=digits))
    assert (record.values["bpm"], record.values["duration_ms"]) == (None, None)
    assert record.metadata["invalid"] == {"bpm": digits[:200], "duration_ms": digits[:200]}


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (track(track_name="Ti\x00tle"), "nul_byte: title contains a NUL byte"),
        (track(label="La\x00bel"), "nul_byte: label contains a NUL byte"),
        ({**track(), "odd\x00key": 1}, "nul_byte: a key contains a NUL byte"),
        ({**track(), "odd\x00key": None}, "nul_byte: a key contains a NUL byte"),
        ({**track(), "odd\x00key": "text"}, "nul_byte: a key contains a NUL byte"),
        (track(metadata={"a": ["x", "y\x00"]}), "nul_byte: metadata.a contains a NUL byte"),
        (track(genres=("House", "Te\x00chno")), "nul_byte: genres contains a NUL byte"),
    ],
)
def test_nul_bytes_are_refused_with_where_they_hide(item: dict, reason: str) -> None:
    with pytest.raises(Rejected) as raised:
        records.to_record(item)
    assert str(raised.value) == reason


def test_clean_scalars_pass_the_nul_check() -> None:
    record = records.to_record(track(bpm=128, duration_ms=200_000.0, is_remix=False, key=None))
    assert record.title == "Title"


class Text(str):
    """A str subclass, as some HTML libraries return."""


@pytest.mark.parametrize(
    ("value", "expected"), [(Text(" Label "), "Label"), (7, "7"), (1.5, "1.5"), ("  ", None)]
)
def test_text_fields_accept_text_and_numbers(value: object, expected: str | None) -> None:
    record = records.to_record(track(label=value))
    assert record.values["label"] == expected
    assert type(record.values["label"]) in (str, type(None))


@pytest.mark.parametrize("value", [True, ["a"], {"a": 1}])
def test_text_fields_refuse_other_types(value: object) -> None:
    with pytest.raises(Rejected, match="wrong_type: label must be text"):
        records.to_record(track(label=value))


def test_an_escape_written_as_text_is_not_a_nul_byte() -> None:
    record = records.to_record(track(metadata={"note": ["a \\x00 written out"]}))
    assert record.metadata == {"note": ["a \\x00 written out"]}


@pytest.mark.parametrize(
    ("bpm", "duration_ms", "expected"),
    [
        ("128", "215000", (128, 215000)),
        ("128.456", "215000.4", (Decimal("128.46"), 215000)),
        ("1000", "0", (None, None)),  # out of range: stored NULL, raw value kept
    ],
)
def test_numbers_written_as_text(bpm: str, duration_ms: str, expected: tuple) -> None:
    record = records.to_record(track(bpm=bpm, duration_ms=duration_ms))
    assert (record.values["bpm"], record.values["duration_ms"]) == expected


@pytest.mark.parametrize("bpm", ["\u00b2", "12\u00b3"])
def test_digits_that_are_not_decimal_numbers_are_refused(bpm: str) -> None:
    with pytest.raises(Rejected, match="wrong_type: bpm must be a number"):
        records.to_record(track(bpm=bpm))


def test_flat_metadata_is_kept_as_given_and_big_metadata_refused() -> None:
    assert records.to_record(track(metadata={"source": "import:csv"})).metadata == {
        "source": "import:csv"
    }
    with pytest.raises(Rejected, match="field_too_long: metadata has"):
        records.to_record(track(metadata={"note": "\x01" * 5000}))


def test_whole_numbers_out_of_range_are_kept_raw_as_numbers() -> None:
    record = records.to_record(track(bpm="1000", duration_ms="0"))
    assert record.metadata["invalid"] == {"bpm": 1000, "duration_ms": 0}
    assert (record.values["bpm"], record.values["duration_ms"]) == (None, None)


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (track(enrichment_status=Text("pend\x00ing")), "nul_byte: enrichment_status contains"),
        ({**track(), 5: "x\x00"}, "nul_byte: 5 contains"),
        ({**track(), 5: None, "odd\x00key": 1}, "nul_byte: a key contains"),
    ],
)
def test_nul_bytes_in_text_subclasses_and_under_other_keys(item: dict, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        records.to_record(item)


def test_an_enum_value_passes_the_nul_check() -> None:
    record = records.to_record(track(enrichment_status=EnrichmentStatus.PENDING))
    assert record.enrichment_status == "pending"


def test_fields_that_are_not_item_fields_go_to_metadata_extra() -> None:
    record = records.to_record(track(shop_url="https://x.example", unused=None))
    assert record.metadata == {"extra": {"shop_url": "https://x.example"}}
    assert records.to_record(track()).metadata == {}


@pytest.mark.parametrize(
    ("title", "version", "is_remix"),
    [
        ("Title (Extended Mix)", "Extended Mix", False),
        ("Title [VIP]", "VIP", False),
        ("Title (Live)", None, False),
        ("Title", None, False),
        ("Title (Someone Remix)", "Someone Remix", True),
        ("Title (Someone Rework)", "Someone Rework", True),  # a remixer credit
    ],
)
def test_version_and_remix_read_from_the_title(title: str, version: str, is_remix: bool) -> None:
    record = records.to_record(track(track_name=title))
    assert (record.values["version"], record.is_remix) == (version, is_remix)
    assert records.to_record(track(track_name=title, is_remix="yes")).is_remix


@pytest.mark.parametrize(
    "metadata",
    [
        {"source": "x", "flag": True, "none": None, "note": "n" * 3000},  # past the quick bound
        {"source": "x", "list": [1, "two"]},  # not flat: checked through JSON
    ],
)
def test_metadata_within_the_limit_is_kept(metadata: dict) -> None:
    assert records.to_record(track(metadata=metadata)).metadata == metadata


DAY_MS = 24 * 3600 * 1000


@pytest.mark.parametrize(
    ("bpm", "duration_ms", "accepted"),
    [
        (0.01, 1, True),
        (999.99, DAY_MS - 1, True),
        ("128", str(DAY_MS - 1), True),
        (1000, DAY_MS, False),
        ("1000", str(DAY_MS), False),
        (0, 0, False),
        (-5, -5, False),
    ],
)
def test_the_writer_and_enrichment_take_the_same_bpm_and_duration(
    bpm: object, duration_ms: object, accepted: bool
) -> None:
    """One rule: a duration the writer stored (a day or more) was one enrichment refused."""
    record = records.to_record(track(bpm=bpm, duration_ms=duration_ms))
    stored = (record.values["bpm"] is not None, record.values["duration_ms"] is not None)
    assert stored == (accepted, accepted)
    if not isinstance(bpm, str):
        enriched = (matching.valid_bpm(bpm) is not None, matching.valid_duration_ms(duration_ms))
        assert (enriched[0], enriched[1] is not None) == (accepted, accepted)
