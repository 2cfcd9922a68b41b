"""The bulk paths' garbage-collection settings: raised where bulk work runs, restored after."""

from __future__ import annotations

import gc
from pathlib import Path

from scrapers.db.write.garbage import BULK_THRESHOLDS
from scrapers.db.write.writer import validation_pool
from scrapers.importers.driver import Importer


def test_the_validation_process_collects_rarely() -> None:
    pool = validation_pool()
    try:
        assert pool.submit(gc.get_threshold).result(timeout=60) == BULK_THRESHOLDS
        assert pool.submit(gc.get_freeze_count).result(timeout=60) > 0
    finally:
        pool.shutdown()


def test_an_import_gives_back_the_settings_it_found(tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text("artist,title\nA,One\nB,Two\n")
    before = gc.get_threshold(), gc.get_freeze_count()
    summary = Importer(None, dry_run=True, interactive=False).run([catalogue], "csv")
    assert summary.read == 2
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
    assert before[0] != BULK_THRESHOLDS
