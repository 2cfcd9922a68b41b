"""Precision and recall of the enrichment matcher on labelled, recorded answers.

    python -m bench.eval_enrichment [--baseline REV] [--set dev|heldout ...] [--verbose]

Each set in ``tests/fixtures/enrichment/`` holds real MusicBrainz answers (CC0, trimmed) and
Deezer answers in Deezer's documented shape, one case per track, labelled by hand with the ISRCs
that are right for it (none, when no offered recording is the track) before any code ran on
them. Every case is replayed through the real enricher and clients over HTTP
(``tests.fakes.sources.RecordedAnswers``): searches by artist + title, Spotify off.

Two matchers run in the same invocation: this working tree's, and the baseline's
(``--baseline``, default the commit before issue 15's matching work), extracted with
``git archive`` and run in a subprocess. Printed per set and matcher:

* ISRC precision: assigned ISRCs that are right / ISRCs assigned (a wrong ISRC is worse than none);
* ISRC recall: tracks given a right ISRC / tracks that have one among the answers;
* the same two for the MusicBrainz recording id.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "enrichment"
SETS = ("dev", "heldout")
# The matcher before issue 15 (precision 0.895 measured from outside).
BASELINE = "68979ad7e682425623fd7945dc8440e6422ddf86"


def replay(set_name: str) -> list[dict[str, object]]:
    """Run the importable ``scrapers`` over one set; what it assigned for each case."""
    from scrapers.enrichment.config import EnrichmentConfig
    from scrapers.enrichment.enricher import Enricher, TrackQuery
    from scrapers.settings_check import project_settings
    from tests.fakes.sources import RecordedAnswers

    logging.disable(logging.WARNING)  # one "ISRC not found" line per unmatched case
    cases = json.loads((FIXTURES / f"{set_name}.json").read_text())["cases"]
    outcomes = []
    with RecordedAnswers() as server:
        config = EnrichmentConfig.from_settings(
            project_settings(
                {
                    "ENRICHMENT_MUSICBRAINZ_URL": server.url,
                    "ENRICHMENT_DEEZER_URL": server.url,
                    "ENRICHMENT_RATES": {
                        "musicbrainz": 1000.0,
                        "deezer": 1000.0,
                        "spotify": 1000.0,
                    },
                }
            ),
            environ={},
        )
        enricher = Enricher.from_config(config, cache=None)
        for case in cases:
            server.case = case
            known = {"duration_ms": case["duration_ms"]} if case.get("duration_ms") else {}
            result = enricher.enrich(TrackQuery(case["artist"], case["title"], known))
            outcomes.append(
                {
                    "id": case["id"],
                    "isrc": result.values.get("isrc"),
                    "musicbrainz_id": result.values.get("musicbrainz_id"),
                }
            )
    return outcomes


def figures(set_name: str, outcomes: list[dict[str, object]]) -> dict[str, object]:
    labels = {
        case["id"]: case["label"]
        for case in json.loads((FIXTURES / f"{set_name}.json").read_text())["cases"]
    }
    result: dict[str, object] = {"cases": len(outcomes), "wrong": [], "missed": []}
    for field, right_of in (
        ("isrc", lambda label: set(label["isrcs"])),
        ("musicbrainz_id", lambda label: {label["musicbrainz_id"]} - {None}),
    ):
        assigned = right = findable = found = 0
        for outcome in outcomes:
            value, right_values = outcome[field], right_of(labels[outcome["id"]])
            findable += bool(right_values)
            if value is not None:
                assigned += 1
                right += value in right_values
                if value not in right_values:
                    result["wrong"].append(f"{outcome['id']}: {field} {value}")
            found += value is not None and value in right_values
            if right_values and value is None:
                result["missed"].append(f"{outcome['id']}: {field}")
        result[field] = {
            "assigned": assigned,
            "right": right,
            "findable": findable,
            "precision": right / assigned if assigned else 1.0,
            "recall": found / findable if findable else 1.0,
        }
    return result


def run_baseline(revision: str, sets: list[str]) -> dict[str, list[dict[str, object]]]:
    """The baseline's ``scrapers`` package, run over the sets in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, "scrapers"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, str(ROOT)])}
        answer = subprocess.run(
            [sys.executable, __file__, "--replay", *sets],
            env=env,
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(answer.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    parser.add_argument("--set", action="append", choices=SETS, dest="sets")
    parser.add_argument("--verbose", action="store_true", help="list wrong and missed cases")
    parser.add_argument("--replay", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay:  # the subprocess side: print raw outcomes as JSON
        print(json.dumps({name: replay(name) for name in args.replay}))
        return 0
    sets = args.sets or list(SETS)
    ours = {name: replay(name) for name in sets}
    theirs = run_baseline(args.baseline, sets)
    print(
        f"{'set':8} {'matcher':9} {'cases':>5} {'ISRCs':>5} {'right':>5} "
        f"{'precision':>9} {'recall':>6} {'MBID prec':>9} {'MBID rec':>8}"
    )
    for name in sets:
        for label, outcomes in ((f"{args.baseline[:7]}", theirs[name]), ("ours", ours[name])):
            stats = figures(name, outcomes)
            isrc, mbid = stats["isrc"], stats["musicbrainz_id"]
            print(
                f"{name:8} {label:9} {stats['cases']:5} {isrc['assigned']:5} {isrc['right']:5} "
                f"{isrc['precision']:9.3f} {isrc['recall']:6.3f} "
                f"{mbid['precision']:9.3f} {mbid['recall']:8.3f}"
            )
            if args.verbose:
                for line in stats["wrong"]:
                    print(f"    wrong  {line}")
                for line in stats["missed"]:
                    print(f"    missed {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
