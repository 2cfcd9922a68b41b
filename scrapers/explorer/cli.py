"""``tracklists-explore``: read the catalogue from a terminal.

    tracklists-explore search "bicep glue"            tracks by text, ISRC or Spotify ID
    tracklists-explore track "Bicep - Glue"           plays, what DJs play after / before / with it
    tracklists-explore dj "Amelie Lens"               their sets, top tracks, top transitions
    tracklists-explore top [--transitions]            over all sets, or --since/--until/--genre
    tracklists-explore path "A - X" "B - Y"           a set from one track to another
    tracklists-explore setlist 1gz59x6t               one setlist as the site shows it

Human tables by default, ``--json`` for scripts; ``track``, ``path`` and ``setlist`` export a
playlist with ``--format jspf|m3u|csv``. A track is named by "ARTIST - TITLE", an ISRC, a
Spotify ID or URL, or its id; a misspelt name takes the closest match (said on stderr).

Exit status: 0 found, 1 nothing found, 2 bad arguments or no database (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import psycopg2
import psycopg2.errors

from scrapers.db import explore
from scrapers.db.server.connection import NO_DATABASE_ERRORS, one_line, resolve_database_url
from scrapers.db.server.migrations import SchemaTooOld, require_current_schema
from scrapers.explorer import playlists
from scrapers.explorer.playlists import Format

FOUND, NOTHING_FOUND, BAD_ARGUMENTS = 0, 1, 2
DEFAULT_TIMEOUT = 10.0  # seconds a query may run


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)
    if args.json and getattr(args, "format", None):
        arguments.error("--json and --format are alternatives: give one of them")
    try:
        url = resolve_database_url()
        with explore.read_only(url, round(args.timeout * 1000)) as connection:
            require_current_schema(connection)
            status = args.run(connection, args)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # The reader stopped early (``| head``): what it read was found. Python would flush
        # stdout again at exit and fail the same way, so stdout now goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FOUND
    except psycopg2.errors.QueryCanceled:  # an OperationalError too: before NO_DATABASE_ERRORS
        return _fail(f"the query took longer than {args.timeout:g} s (--timeout, or narrow it)")
    except NO_DATABASE_ERRORS as error:
        return _fail(f"cannot read the database: {one_line(error)}")
    except (ValueError, SchemaTooOld) as error:
        return _fail(one_line(error))
    except psycopg2.Error as error:
        return _fail(f"a query failed: {error.diag.message_primary or one_line(error)}")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="tracklists-explore",
        description="Read the catalogue: tracks, what DJs play after them, DJs, top lists, paths.",
        epilog="Exit status: 0 found, 1 nothing found, 2 bad arguments or no database.",
    )
    commands = top.add_subparsers(dest="command", required=True)

    def command(
        name: str, run: Callable[..., int], help_text: str, lists: bool = True
    ) -> argparse.ArgumentParser:
        """A subcommand; ``lists``: it prints most-played lists, which ``--limit`` bounds."""
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(run=run)
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
        if lists:
            sub.add_argument(
                "--limit", type=_limit, default=explore.DEFAULT_LIMIT, help="rows per list (1-200)"
            )
        sub.add_argument(
            "--timeout",
            type=_timeout,
            default=DEFAULT_TIMEOUT,
            metavar="SECONDS",
            help=f"stop a query after this long (default {DEFAULT_TIMEOUT:g}; 0.1-3600)",
        )
        return sub

    search = command("search", run_search, "find tracks by text, ISRC or Spotify ID")
    search.add_argument("query")

    track = command("track", run_track, "a track: plays, what is played after, before and with it")
    track.add_argument("track", help='"ARTIST - TITLE", an ISRC, a Spotify ID or a track id')
    _format_option(track, 'export its "played after" list')

    dj = command("dj", run_dj, "a DJ: their sets, most played tracks and transitions")
    dj.add_argument("name")

    top_lists = command("top", run_top, "the most played tracks, or transitions")
    top_lists.add_argument("--transitions", action="store_true", help="transitions, not tracks")
    top_lists.add_argument("--since", type=_date, help="sets played on or after (YYYY-MM-DD)")
    top_lists.add_argument("--until", type=_date, help="sets played on or before (YYYY-MM-DD)")
    top_lists.add_argument("--genre", help="sets tagged with this genre")

    path = command(
        "path", run_path, "a set from one track to another through played transitions", False
    )
    path.add_argument("source", help="the first track")
    path.add_argument("target", help="the last track")
    path.add_argument(
        "--max-steps",
        type=_max_steps,
        default=explore.DEFAULT_MAX_STEPS,
        help=f"at most this many transitions (1-{explore.MAX_STEPS})",
    )
    path.add_argument(
        "--bpm-window", type=float, metavar="PCT", help="each step within ±PCT %% BPM"
    )
    path.add_argument("--harmonic", action="store_true", help="each step to a Camelot neighbour")
    _format_option(path, "export the path")

    found = command("setlist", run_setlist, "one setlist as the site shows it", False)
    found.add_argument("setlist", help="the site's tracklist id or the setlist's id")
    _format_option(found, "export its tracks")
    return top


def run_search(connection: Any, args: argparse.Namespace) -> int:
    hits = explore.search_tracks(connection, args.query, args.limit)
    if args.json:
        _print_json({"results": [_hit_json(hit) for hit in hits]})
    else:
        _table(
            ["artist", "title", "sets", "isrc", "matched"],
            [[h.track.artist, h.track.title, h.sets, h.track.isrc or "", h.matched] for h in hits],
        )
    return FOUND if hits else NOTHING_FOUND


def run_track(connection: Any, args: argparse.Namespace) -> int:
    found = resolve_track(connection, args.track)
    if found is None:
        return _nothing(f"no track matches {args.track!r}")
    detail = explore.track_detail(connection, found.id, args.limit)
    if detail is None:
        return _nothing(f"no track matches {args.track!r}")
    lists = detail.neighbourhood
    if args.format:
        return _export(playlists.from_followers(detail.track, lists.followers), args.format)
    if args.json:
        _print_json(
            {
                "track": explore.as_json(detail.track),
                "plays": explore.as_json(detail.plays),
                "followers": [_counted(n.track, n.plays) for n in lists.followers],
                "predecessors": [_counted(n.track, n.plays) for n in lists.predecessors],
                "with": [_counted(n.track, n.plays) for n in lists.with_tracks],
                "other_versions": [_counted(v.track, v.plays) for v in detail.other_versions],
                "top_djs": explore.as_json(detail.top_djs),
            }
        )
        return FOUND
    track, plays = detail.track, detail.plays
    print(f"{track.artist} - {track.title}")
    identifiers = [f"ISRC {track.isrc}" if track.isrc else "", track.spotify_id or ""]
    known = "  ".join(filter(None, [*identifiers, _bpm_key(track)]))
    if known:
        print(f"  {known}")
    print(f"  played in {plays.sets} set(s) by {plays.djs} DJ(s), {_dates(plays)}")
    for title, rows in (
        ("Played after it", lists.followers),
        ("Played before it", lists.predecessors),
        ("Played with it", lists.with_tracks),
    ):
        print(f"\n{title}:")
        _table(
            ["artist", "title", "sets", "djs"],
            [[n.track.artist, n.track.title, n.plays.sets, n.plays.djs] for n in rows],
        )
    if detail.other_versions:
        print("\nOther versions:")
        _table(
            ["artist", "title", "sets"],
            [[v.track.artist, v.track.title, v.plays.sets] for v in detail.other_versions],
        )
    if detail.top_djs:
        print("\nDJs who play it most:")
        _table(["dj", "sets"], [[dj.name, dj.sets] for dj in detail.top_djs])
    return FOUND


def run_dj(connection: Any, args: argparse.Namespace) -> int:
    candidates = explore.find_djs(connection, args.name, 5)
    if not candidates:
        return _nothing(f"no DJ matches {args.name!r}")
    name = candidates[0].name
    if name.lower() != " ".join(args.name.split()).lower():
        print(f"closest match for {args.name!r}: {name}", file=sys.stderr)
    detail = explore.dj_detail(connection, name, args.limit)
    if detail is None:
        return _nothing(f"no DJ matches {args.name!r}")
    if args.json:
        _print_json(explore.as_json(detail))
        return FOUND
    print(detail.name)
    print("\nLatest sets:")
    _table(
        ["date", "title", "tracklist"],
        [[s.set_date or "", s.title or "", s.source_id] for s in detail.sets],
    )
    print("\nMost played tracks:")
    _table(
        ["artist", "title", "sets"],
        [[t.track.artist, t.track.title, t.plays.sets] for t in detail.top_tracks],
    )
    print("\nMost repeated transitions:")
    _transition_table(detail.top_transitions)
    return FOUND


def run_top(connection: Any, args: argparse.Namespace) -> int:
    scope = explore.SetScope(since=args.since, until=args.until, genre=args.genre)
    if args.transitions:
        transitions = explore.top_transitions(connection, scope, args.limit)
        if args.json:
            _print_json({"transitions": [_transition_json(t) for t in transitions]})
        else:
            _transition_table(transitions)
        return FOUND if transitions else NOTHING_FOUND
    tracks = explore.top_tracks(connection, scope, args.limit)
    if args.json:
        _print_json({"tracks": [_counted(t.track, t.plays) for t in tracks]})
    else:
        _table(
            ["artist", "title", "sets", "djs"],
            [[t.track.artist, t.track.title, t.plays.sets, t.plays.djs] for t in tracks],
        )
    return FOUND if tracks else NOTHING_FOUND


def run_path(connection: Any, args: argparse.Namespace) -> int:
    rules = explore.MixRules(bpm_window=args.bpm_window, harmonic_keys=args.harmonic)
    ends = []
    for text in (args.source, args.target):
        found = resolve_track(connection, text)
        if found is None:
            return _nothing(f"no track matches {text!r}")
        ends.append(found)
    path = explore.build_path(connection, ends[0].id, ends[1].id, args.max_steps, rules)
    if path.found and args.format:
        return _export(playlists.from_path(path), args.format)
    if args.json:
        shown = {"steps": [{"artist": s.track.artist, "title": s.track.title} for s in path.steps]}
        _print_json(shown if path.found else {**shown, "reason": path.reason})
    elif path.found:
        _table(
            ["step", "artist", "title", "sets", "bpm", "key"],
            [
                [i, s.track.artist, s.track.title, *_step_figures(s)]
                for i, s in enumerate(path.steps)
            ],
        )
    if not path.found:
        print(path.reason, file=sys.stderr)
    return FOUND if path.found else NOTHING_FOUND


def run_setlist(connection: Any, args: argparse.Namespace) -> int:
    found = explore.setlist(connection, args.setlist)
    if found is None:
        return _nothing(f"no setlist {args.setlist!r}")
    if args.format:
        return _export(playlists.from_setlist(found), args.format)
    if args.json:
        _print_json(explore.as_json(found))
        return FOUND
    summary = found.setlist
    print(
        f"{summary.title or summary.source_id}  {summary.set_date or ''}  {', '.join(summary.djs)}"
    )
    rows = []
    for row in found.rows:
        shown = "w/" if row.played_with_previous else "  +" if row.mashup_part else row.position
        name = (
            f"{row.track.artist} - {row.track.title}"
            if row.track
            else f"{row.raw_artist} - {row.raw_title}"
        )
        rows.append([shown if shown is not None else "", name, "" if row.track else "unknown"])
    _table(["#", "track", ""], rows)
    return FOUND


def resolve_track(connection: Any, text: str) -> explore.TrackRef | None:
    """The track ``text`` names: its id, an identifier or exact name, else the closest match."""
    try:
        track_id = str(uuid.UUID(text.strip()))
    except ValueError:
        hits = explore.search_tracks(connection, text, 1)
        if not hits:
            return None
        if hits[0].matched == "text":
            print(f"closest match for {text!r}: {_name(hits[0].track)}", file=sys.stderr)
        return hits[0].track
    return explore.track_by_id(connection, track_id)


def _export(playlist: playlists.Playlist, output: Format) -> int:
    sys.stdout.write(playlists.render(playlist, output))
    return FOUND


def _format_option(sub: argparse.ArgumentParser, what: str) -> None:
    sub.add_argument(
        "--format", type=Format, choices=list(Format), help=f"{what} as a playlist on stdout"
    )


def _counted(track: explore.TrackRef, plays: explore.Plays) -> dict[str, Any]:
    """The shape lists take in ``--json``: artist, title, sets, djs."""
    return {"artist": track.artist, "title": track.title, "sets": plays.sets, "djs": plays.djs}


def _hit_json(hit: explore.SearchHit) -> dict[str, Any]:
    return {**explore.as_json(hit.track), "sets": hit.sets, "matched": hit.matched}


def _transition_json(transition: explore.Transition) -> dict[str, Any]:
    return {
        "from": {"artist": transition.source.artist, "title": transition.source.title},
        "to": {"artist": transition.target.artist, "title": transition.target.title},
        "sets": transition.plays.sets,
        "djs": transition.plays.djs,
    }


def _transition_table(transitions: Sequence[explore.Transition]) -> None:
    _table(
        ["from", "to", "sets", "djs"],
        [[_name(t.source), _name(t.target), t.plays.sets, t.plays.djs] for t in transitions],
    )


def _table(header: list[str], rows: list[list[Any]]) -> None:
    if not rows:
        print("  (none)")
        return
    text = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [min(max(len(row[i]) for row in text), 60) for i in range(len(header))]
    for row in text:
        print(
            "  "
            + "  ".join(
                cell[:60].ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


def _name(track: explore.TrackRef) -> str:
    return f"{track.artist} - {track.title}"


def _step_figures(step: explore.PathStep) -> list[str]:
    """A path step's sets (from the step before), BPM and key, as table cells."""
    return [
        "" if step.sets is None else str(step.sets),
        _number(step.track.bpm),
        step.track.key or "",
    ]


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _dates(plays: explore.Plays) -> str:
    if plays.first_played is None:
        return "no set dates"
    return f"first {plays.first_played}, last {plays.last_played}"


def _bpm_key(track: explore.TrackRef) -> str:
    return " ".join(
        filter(None, [f"{_number(track.bpm)} BPM" if track.bpm else "", track.key or ""])
    )


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _nothing(message: str) -> int:
    print(message, file=sys.stderr)
    return NOTHING_FOUND


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return BAD_ARGUMENTS


def _limit(text: str) -> int:
    value = _whole(text)
    if not 1 <= value <= explore.MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {explore.MAX_LIMIT}, got {value}")
    return value


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0.1 and 3600 seconds, got {text}")
    return value


def _max_steps(text: str) -> int:
    value = _whole(text)
    if not 1 <= value <= explore.MAX_STEPS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {explore.MAX_STEPS}, got {value}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


if __name__ == "__main__":
    sys.exit(main())
