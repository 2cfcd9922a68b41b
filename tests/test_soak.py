"""The chaos soak (``bench.soak``): 90 seconds of faults with a fixed seed, then convergence.

The soak itself checks the catalogue against a clean crawl and every exit's honesty, and exits
1 when one failed; this test runs it as a user does and reads its summary. Its site is smaller
than the soak's default (150 tracklists) so that a crawl is still in progress when the faults
hit and the whole run stays within a few minutes on a loaded machine.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak import FAULT_KINDS, fault_schedule, lost_requests
from bench.soak_site import ChaosSite
from tests.sitegen import listing_path, make_tracklists
from tests.test_database_setup import throwaway_state_dir

REPO = Path(__file__).resolve().parents[1]


def test_the_fault_schedule_comes_from_the_seed_and_holds_every_kind() -> None:
    first = fault_schedule(random.Random("7:1"), 90)
    again = fault_schedule(random.Random("7:1"), 90)
    other = fault_schedule(random.Random("8:1"), 90)
    assert [(f.at, f.kind, f.draw) for f in first] == [(f.at, f.kind, f.draw) for f in again]
    assert [(f.at, f.kind) for f in first] != [(f.at, f.kind) for f in other]
    assert set(FAULT_KINDS) <= {fault.kind for fault in first}
    times = [fault.at for fault in first]
    assert times == sorted(times) and times[-1] < 90


def test_the_site_never_fails_a_page_more_than_twice_in_a_row() -> None:
    site = ChaosSite(make_tracklists(50), seed=5)
    site.faults_on = True
    failures = {"5xx", "block", "truncated"}
    for tracklist in site.tracklists:
        faults = [site.fault_for(tracklist.path)[0] for _ in range(40)]
        in_row = 0
        for fault in faults:
            in_row = in_row + 1 if fault in failures else 0
            assert in_row <= 2, faults
    assert set(site.faults_served) == {"5xx", "block", "slow", "truncated"}
    site.server.server_close()


def test_what_a_failed_run_may_have_lost_is_only_what_it_had_in_hand() -> None:
    site = ChaosSite(make_tracklists(60), seed=1)  # three listing pages of 20
    ids = [tracklist.source_id for tracklist in site.tracklists]
    page2, page3 = listing_path(2), listing_path(3)
    killed = {"soak-run-2"}
    log = [
        (1.0, site.tracklists[0].path, "soak-run-2"),  # in flight when it died
        (2.0, page2, "soak-run-2"),  # nobody followed its links: pages 2 and 3 are lost
        (3.0, site.tracklists[1].path, "soak-run-1"),  # a run that said "done"
    ]
    assert lost_requests(site, log, killed, 0, 10) == {ids[0], *ids[20:]}
    # Someone went on to page 3 after it: page 2 was read, only page 2's sets are not at stake.
    followed = [*log, (4.0, page3, "soak-run-1")]
    assert lost_requests(site, followed, killed, 0, 10) == {ids[0]}
    # Outside the crawl's window, or asked by a run that exited 0: nothing is excused.
    assert lost_requests(site, log, killed, 2.5, 10) == set()
    assert lost_requests(site, log, {"soak-run-1"}, 0, 10) == {ids[1]}
    site.server.server_close()


@pytest.mark.slow
def test_a_90_second_soak_converges_with_honest_exits() -> None:
    workdir = throwaway_state_dir("soak")  # the PostgreSQL service user must enter it as root
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "1.5", "--seed", "19",
         "--workers", "3", "--tracklists", "150", "--workdir", str(workdir)],
        cwd=REPO, capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    summary = done.stdout
    assert done.returncode == 0, summary[-6000:] + done.stderr[-3000:]  # logs stay in workdir
    shutil.rmtree(workdir, ignore_errors=True)
    assert "result: PASS" in summary
    # Every kind of fault was injected, not only scheduled.
    injected = re.findall(r"fault at +[\d.]+s +(\w+) ", summary)
    assert set(FAULT_KINDS) <= set(injected), summary
    assert "no live worker" not in summary
    served = re.search(r"site faults served: (.*)", summary)
    assert served and all(kind in served[1] for kind in ("5xx", "block", "slow", "truncated"))
    # The catalogue matched the reference (the soak compares; here its counts must agree too).
    [reference] = re.findall(r"reference \(one clean worker\): (.*)", summary)
    assert re.findall(r"catalogue: (.*)", summary) == [reference]
    assert "peak RSS per worker slot" in summary
