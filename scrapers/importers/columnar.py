"""CSV catalogues read in columns: the import's fast front end.

``CsvReader`` reads a line at a time through the csv module and leaves validation to the writer's
``records.to_record``: about 40 µs of Python a row. This reader takes the file a chunk of lines at
a time and decides in columns (polars) what it can decide exactly:

* a *plain* line (printable ASCII, no quote, as many commas as the header) is split on its
  commas: what the csv module would give it, and no such line changes how later lines are read;
* the plain rows are validated in columns (``record_columns``, the fast path of ``to_record``,
  with ``identity_columns``, the fast path of ``identity``), and their row digests computed
  (``row_digest``'s rule, the repr of the item, in columns);
* every other line (a quote, a byte outside printable ASCII, a value ``to_record`` would refuse or
  note invalid) goes through ``CsvLines``, today's Python path, in file order.

Rows come out in file order: a ``FastRow`` (item, digest and validated record) or a ``SourceRow``
as ``CsvReader`` gives it. ``tests/test_import_columnar.py`` checks both paths give identical
items, digests and records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import polars as pl

from scrapers.db.write import record_columns
from scrapers.db.write.payload import Payload
from scrapers.db.write.records import TrackRecord
from scrapers.importers.csv_reader import CSV_METADATA, CsvLines
from scrapers.importers.lines import read_lines
from scrapers.importers.source import FileReader, SourceRow
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
class Chunk:
    """What a chunk of lines gave: the rows decided in columns and the others, by line."""

    # ``record_columns.track_columns`` of the fast rows, with ``line``, ``location``, the
    # item's fields as read (``names``) and ``digest`` (``row_digest`` of the item).
    fast: pl.DataFrame
    credits: pl.DataFrame  # ``line``, ``name``, ``role``, ``key`` of the fast rows
    names: list[str]
    # Every other line's row (``CsvLines``), in file order; blank lines give none.
    slow: list[tuple[int, SourceRow]]

    def rows(self) -> Iterator[SourceRow | FastRow]:
        """Every row in file order, the fast ones with their item and record."""
        records = record_columns.track_records(self.fast, self.credits, CSV_METADATA)
        given = self.fast.select("line", "location", *self.names, "_status", "digest")
        slow = iter(self.slow)
        waiting = next(slow, None)
        for line, location, *values, status, digest in zip(
            *(c.to_list() for c in given.iter_columns()), strict=True
        ):
            while waiting is not None and waiting[0] < line:
                yield waiting[1]
                waiting = next(slow, None)
            item = {
                name: value
                for name, value in zip(self.names, values, strict=True)
                if value is not None
            }
            item["metadata"] = dict(CSV_METADATA)
            if status is not None:
                item["enrichment_status"] = EnrichmentStatus.PENDING
            yield FastRow(location, item, digest, next(records))
        while waiting is not None:
            yield waiting[1]
            waiting = next(slow, None)


class ColumnarCsvReader(FileReader):
    format_name = "csv"

    def __init__(self, path: Path, chunk_lines: int = CHUNK_LINES) -> None:
        super().__init__(path)
        self.chunk_lines = chunk_lines

    def rows(self) -> Iterator[SourceRow | FastRow]:
        for chunk in self.chunks():
            yield from chunk.rows()

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
        frame, credits = _plain_rows(parser, lines)
        names = list(parser.columns)
        fast = frame.filter("fast").with_columns(line=pl.col("row") + first, digest=_repr(names))
        fast = fast.with_columns(
            location=pl.concat_str(pl.lit(f"{self.label}:"), pl.col("line")),
            digest=pl.Series(
                [
                    hashlib.blake2b(text.encode(), digest_size=16).digest()
                    for text in fast["digest"].to_list()
                ],
                dtype=pl.Binary,
            ),
        )
        fast_rows = set(fast["row"].to_list())
        slow = []
        for index, line in enumerate(lines):
            if index not in fast_rows:
                row = parser.row(first + index, line)
                if row is not None:
                    slow.append((first + index, row))
        credits = credits.join(fast.select("row", "line"), on="row").select(
            "line", "name", "role", "key"
        )
        return Chunk(fast, credits, names, slow)


def _plain_rows(
    parser: CsvLines, chunk: list[bytes | Payload]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``record_columns.track_columns`` of the chunk's plain lines (``row``: index in chunk)."""
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
    frame = split.select(
        pl.Series("row", range(len(chunk)), pl.Int64).filter(plain),
        *(
            pl.col(f"field_{index}").str.strip_chars(" ").replace("", None).alias(name)
            for name, index in parser.columns.items()
        ),
    )
    return record_columns.track_columns(frame)


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
    status = pl.when(pl.col("_status").is_not_null()).then(
        pl.lit(f", 'enrichment_status': {_PENDING_REPR}")
    )
    return pl.concat_str(
        pl.lit("{"),
        *parts,
        pl.lit(f"'metadata': {_METADATA_REPR}"),
        status.fill_null(""),
        pl.lit("}"),
    )
