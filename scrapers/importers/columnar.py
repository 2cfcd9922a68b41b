"""CSV catalogues read in columns: the import's fast front end.

``CsvReader`` reads a line at a time through the csv module and leaves validation to the writer's
``records.to_record``: about 40 µs of Python a row. This reader takes the file a chunk of lines at
a time and decides in columns (polars) what it can decide exactly:

* a *plain* line (printable ASCII, no quote, as many commas as the header) is split on its
  commas: what the csv module would give it, and no such line changes how later lines are read;
* the plain rows' digests are computed first, from the split fields alone (``row_digest``'s rule,
  the repr of the item, in columns), so that a caller can drop repeats and known rows before
  paying for them (``Chunk.in_order``): a re-import reads, splits and digests, nothing more;
* only the rows left are validated (``Chunk.decide``): in columns (``record_columns``, the fast
  path of ``to_record``, with ``identity_columns``, the fast path of ``identity``) where that is
  exact;
* every other line (a quote, a byte outside printable ASCII, a value ``to_record`` would refuse or
  note invalid) goes through ``CsvLines``, today's Python path.

``ColumnarCsvReader.rows`` gives every row in file order: a ``FastRow`` (item, digest and
validated record) or a ``SourceRow`` as ``CsvReader`` gives it. ``tests/test_import_columnar.py``
checks both paths give identical items, digests and records.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

import polars as pl

from scrapers import identity_columns
from scrapers.db.write import record_columns
from scrapers.db.write.payload import Payload
from scrapers.db.write.records import TrackRecord
from scrapers.importers.csv_reader import CSV_METADATA, CsvLines
from scrapers.importers.lines import read_lines
from scrapers.importers.source import FileReader, SourceRow, digest_of
from scrapers.statuses import EnrichmentStatus

# Lines decided together: memory is bounded by a chunk (measured: about 3 KB a line at peak,
# polars' work included), and polars' fixed cost per call is spread over enough rows.
CHUNK_LINES = 50_000
# A line the csv module would split exactly on its commas, in ``record_columns``' domain.
_PLAIN_LINE = r"^[ !#-~]*$"
_METADATA_REPR = repr(CSV_METADATA)
_PENDING_REPR = repr(EnrichmentStatus.PENDING)


@dataclass(frozen=True, slots=True)
class FastRow:
    """A row decided in columns: what ``CsvReader`` and ``to_record`` would have made of it."""

    location: str
    item: dict[str, Any]
    digest: bytes
    record: TrackRecord


@dataclass
class Decided:
    """Plain rows of a chunk validated: those decided in columns, and the others as read."""

    # ``record_columns.track_columns`` of the rows decided in columns, with ``line``,
    # ``location``, the item's fields as read (``names``) and ``digest``.
    fast: pl.DataFrame
    credits: pl.DataFrame  # ``line``, ``name``, ``role``, ``key`` of the fast rows
    names: list[str]
    # The rows the columns do not decide (a value ``to_record`` would refuse or note invalid), as
    # ``CsvLines`` reads them: (line, digest, row).
    others: list[tuple[int, bytes, SourceRow]]

    def rows(self) -> Iterator[tuple[int, bytes, FastRow | SourceRow]]:
        """Every row with its line and digest, in file order, the fast ones with their item and
        record."""
        return heapq.merge(self._fast_rows(), self.others, key=itemgetter(0))

    def _fast_rows(self) -> Iterator[tuple[int, bytes, FastRow]]:
        records = record_columns.track_records(self.fast, self.credits, CSV_METADATA)
        given = self.fast.select("line", "location", *self.names, "_status", "digest")
        for line, location, *values, status, digest in zip(
            *(c.to_list() for c in given.iter_columns()), strict=True
        ):
            item = {
                name: value
                for name, value in zip(self.names, values, strict=True)
                if value is not None
            }
            item["metadata"] = dict(CSV_METADATA)
            if status is not None:
                item["enrichment_status"] = EnrichmentStatus.PENDING
            yield line, digest, FastRow(location, item, digest, next(records))


@dataclass
class Chunk:
    """A chunk of lines, read only as far as deciding a row's fate needs: the plain rows split
    and digested (``row_digest``'s rule, in columns), every other line read by ``CsvLines``.

    A caller drops repeats and known rows by their digests (``in_order``) and only then pays for
    validating, keying and building what is left (``decide``).
    """

    # The plain lines with an artist and a title: ``line``, the item's fields as read (``names``:
    # stripped, null when empty), ``digest`` (``row_digest`` of the item).
    plain: pl.DataFrame
    names: list[str]
    # Every other line's row (``CsvLines``), in file order; blank lines give none.
    slow: list[tuple[int, SourceRow]]
    # What ``decide`` reads the plain rows it cannot decide in columns with.
    parser: CsvLines
    label: str
    first: int  # the line number of ``lines[0]``
    lines: list[bytes | Payload]
    # The plain rows' ``line`` and ``digest`` as Python values (``in_order`` walks them).
    plain_lines: list[int]
    plain_digests: list[bytes]

    def __len__(self) -> int:
        """The rows of the chunk (blank lines are none)."""
        return len(self.plain_lines) + len(self.slow)

    def in_order(self) -> Iterator[tuple[int, bytes | None, SourceRow | None]]:
        """Every row in file order: (line, digest, None) for a plain row, (line, digest or None,
        row) for another line's row (its ``row_digest`` when it has an item)."""
        plain = zip(self.plain_lines, self.plain_digests, repeat(None))
        slow = ((line, digest_of(row), row) for line, row in self.slow)
        return heapq.merge(plain, slow, key=itemgetter(0))

    def decide(self, lines: list[int]) -> Decided:
        """The plain rows at ``lines`` (in file order) validated: in columns where that is
        exact, by ``CsvLines`` (for ``to_record`` to decide) otherwise."""
        kept = self.plain.filter(pl.col("line").is_in(lines))
        frame, credits = record_columns.track_columns(
            kept.select(pl.col("line").alias("row"), *self.names)
        )
        fast = frame.filter("fast").rename({"row": "line"})
        fast = fast.join(kept.select("line", "digest"), on="line", how="left").with_columns(
            location=pl.concat_str(pl.lit(f"{self.label}:"), pl.col("line"))
        )
        others = []
        digests = dict(zip(kept["line"].to_list(), kept["digest"].to_list(), strict=True))
        for line in frame.filter(~pl.col("fast"))["row"].to_list():
            row = self.parser.row(line, self.lines[line - self.first])
            assert row is not None  # a plain row with an artist is never blank
            others.append((line, digests[line], row))
        credits = credits.rename({"row": "line"}).select("line", "name", "role", "key")
        return Decided(fast, credits, self.names, others)


class ColumnarCsvReader(FileReader):
    format_name = "csv"

    def __init__(self, path: Path, chunk_lines: int = CHUNK_LINES) -> None:
        super().__init__(path)
        self.chunk_lines = chunk_lines

    def rows(self) -> Iterator[SourceRow | FastRow]:
        """Every row in file order, every plain one validated (no row dropped)."""
        for chunk in self.chunks():
            decided = ((line, row) for line, _, row in chunk.decide(chunk.plain_lines).rows())
            for _, row in heapq.merge(decided, chunk.slow, key=itemgetter(0)):
                yield row

    def chunks(self) -> Iterator[Chunk]:
        """The file a chunk of ``chunk_lines`` lines at a time (memory stays bounded)."""
        with self.open_binary() as handle:
            lines = read_lines(handle)
            parser = CsvLines(self, next(lines, None))
            number = 2
            while lines_read := list(islice(lines, self.chunk_lines)):
                yield self._chunk(parser, number, lines_read)
                number += len(lines_read)
        self.finish()

    def _chunk(self, parser: CsvLines, first: int, lines: list[bytes | Payload]) -> Chunk:
        names = list(parser.columns)
        plain = _plain_rows(parser, lines).with_columns(line=pl.col("row") + first)
        plain = plain.filter(pl.col("artist").is_not_null() & pl.col("title").is_not_null())
        texts = plain.select(_repr(names))["repr"].to_list()
        digests = [hashlib.blake2b(text.encode(), digest_size=16).digest() for text in texts]
        plain_rows = set(plain["row"].to_list())
        slow = []
        for index, line in enumerate(lines):
            if index not in plain_rows:
                row = parser.row(first + index, line)
                if row is not None:
                    slow.append((first + index, row))
        plain_lines = plain["line"].to_list()
        plain = plain.select("line", *names).with_columns(
            digest=pl.Series(digests, dtype=pl.Binary)
        )
        return Chunk(plain, names, slow, parser, self.label, first, lines, plain_lines, digests)


def _plain_rows(parser: CsvLines, chunk: list[bytes | Payload]) -> pl.DataFrame:
    """The fields of the chunk's plain lines (``row``: index in chunk), stripped, null when
    empty."""
    joined = b"".join(line if type(line) is bytes else b"\n" for line in chunk)
    if not joined.endswith(b"\n"):
        joined += b"\n"  # the file's last line, without a line end
    # Latin-1 maps each byte to one character: a plain line is ASCII, decoded as UTF-8 would.
    texts = pl.Series("line", joined.decode("latin-1").split("\n")[:-1]).str.strip_suffix("\r")
    width = parser.width
    plain = texts.str.contains(_PLAIN_LINE) & (
        texts.str.count_matches(",", literal=True) == width - 1
    )
    split = texts.filter(plain).str.split_exact(",", width - 1).struct.unnest()
    return split.select(
        pl.Series("row", range(len(chunk)), pl.Int64).filter(plain),
        *(
            pl.col(f"field_{index}").str.strip_chars(" ").replace("", None).alias(name)
            for name, index in parser.columns.items()
        ),
    )


def _repr(names: list[str]) -> pl.Expr:
    """``repr`` of the item ``CsvLines`` builds from a plain row: ``row_digest``'s text.

    A plain value holds no double quote and no character ``repr`` escapes but the backslash, so
    its repr is the value between single quotes, or double quotes when it holds a single one.
    """
    parts = []
    for name in names:
        value = pl.col(name).str.replace_all("\\", "\\\\", literal=True)
        quoted = (
            pl.when(pl.col(name).str.contains("'", literal=True))
            .then(pl.concat_str(pl.lit('"'), value, pl.lit('"')))
            .otherwise(pl.concat_str(pl.lit("'"), value, pl.lit("'")))
        )
        parts.append(pl.concat_str(pl.lit(f"{name!r}: "), quoted, pl.lit(", ")).fill_null(""))
    # ``track_row``: marked for enrichment without a valid ISRC (``identity_columns.isrc`` is
    # ``normalize_isrc`` on printable ASCII).
    pending = identity_columns.isrc(pl.col("isrc"))[0].is_null() if "isrc" in names else True
    status = pl.when(pending).then(pl.lit(f", 'enrichment_status': {_PENDING_REPR}"))
    return pl.concat_str(
        pl.lit("{"),
        *parts,
        pl.lit(f"'metadata': {_METADATA_REPR}"),
        status.otherwise(pl.lit("")),
        pl.lit("}"),
    ).alias("repr")
