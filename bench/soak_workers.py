"""The soak's crawl workers: ``scrapy crawl 1001tracklists`` processes, as a supervisor runs them.

Each run gets its own log file and User-Agent (``soak-run-N``), so the site's request log says
which run asked for which page. ``Supervisor`` starts runs, samples their memory once a second,
reaps them, and stops them as systemd does: SIGTERM, then ``kill -9`` after the grace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.soak_checks import final_stats

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    number: int
    slot: int
    phase: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started: float
    ended: float | None = None
    exit: int | None = None
    how: str = "exited"  # or "kill -9", "SIGTERM", "SIGTERM, then kill -9 after the grace"
    stop_seconds: float | None = None  # from SIGTERM to the exit
    peak_rss_kb: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    alive_at_exit: int = 0  # other runs of the frontier still alive when this one exited
    stored_at_exit: set[str] | None = None  # setlists stored whole then (last workers out)

    @property
    def user_agent(self) -> str:
        return f"soak-run-{self.number}"

    @property
    def failed(self) -> bool:
        """Did not say "done": killed, stopped, or a non-zero exit."""
        return self.exit != 0 or self.how != "exited"

    def log_tail(self, lines: int = 5) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class Supervisor:
    """Starts and stops runs; ``clock()`` is seconds since the soak began; ``on_exit(run)`` is
    called as each run is found to have exited."""

    def __init__(
        self, folder: Path, grace: float, clock: Any, on_exit: Callable[[Run], None]
    ) -> None:
        self.folder = folder
        self.on_exit = on_exit
        self.grace = grace
        self.clock = clock
        self.runs: list[Run] = []
        self._lock = threading.Lock()
        self._sampler = threading.Thread(target=self._sample_forever, daemon=True)
        self._sampling = True
        self._sampler.start()

    def start(
        self, slot: int, phase: str, database_url: str, settings: dict[str, Any],
        arguments: dict[str, str],
    ) -> Run:  # fmt: skip
        with self._lock:
            number = len(self.runs) + 1
        log_path = self.folder / f"run-{number:03d}-{phase}-slot{slot}.log"
        command = [sys.executable, "-m", "scrapy", "crawl", "1001tracklists"]
        for name, value in arguments.items():
            command += ["-a", f"{name}={value}"]
        for name, value in {**settings, "USER_AGENT": f"soak-run-{number}"}.items():
            command += ["-s", f"{name}={value}"]
        env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO)}
        env.pop("REDIS_URL", None)  # the soak's own Redis is given with -s, or none at all
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        run = Run(number, slot, phase, process, log_path, self.clock())
        with self._lock:
            self.runs.append(run)
        return run

    def live(self) -> list[Run]:
        with self._lock:
            return [run for run in self.runs if run.ended is None]

    def reap(self) -> list[Run]:
        """Runs that exited since the last call, with their exit, stats and peak memory."""
        ended = []
        for run in self.live():
            code = run.process.poll()
            if code is None:
                continue
            self._sample(run)
            with self._lock:
                run.ended = self.clock()
                run.exit = code
                run.alive_at_exit = sum(1 for other in self.runs if other.ended is None)
            run.stats = final_stats(run.log_path.read_text(errors="replace"))
            self.on_exit(run)
            ended.append(run)
        return ended

    def kill(self, run: Run) -> None:
        with self._lock:
            run.how = "kill -9"
        run.process.send_signal(signal.SIGKILL)
        run.process.wait()

    def terminate(self, run: Run) -> None:
        """SIGTERM, then ``kill -9`` if it is still there after the grace."""
        with self._lock:
            run.how = "SIGTERM"
        sent = time.monotonic()
        run.process.send_signal(signal.SIGTERM)
        try:
            run.process.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            with self._lock:
                run.how = "SIGTERM, then kill -9 after the grace"
            run.process.send_signal(signal.SIGKILL)
            run.process.wait()
        run.stop_seconds = time.monotonic() - sent

    def wait_all(self, timeout: float) -> list[Run]:
        """Wait until every live run has exited, at most ``timeout`` seconds; the ones still
        running then are returned (not stopped)."""
        deadline = time.monotonic() + timeout
        while self.live() and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.2)
        self.reap()
        return self.live()

    def close(self) -> None:
        self._sampling = False
        for run in self.live():
            run.process.kill()
            run.process.wait()
        self.reap()

    def _sample_forever(self) -> None:
        while self._sampling:
            for run in self.live():
                self._sample(run)
            time.sleep(1.0)

    def _sample(self, run: Run) -> None:
        """VmRSS now and VmHWM (the peak) from /proc; nothing once the process is gone."""
        try:
            status = Path(f"/proc/{run.process.pid}/status").read_text()
        except OSError:
            return
        fields = dict(
            line.split(":", 1)
            for line in status.splitlines()
            if line.startswith(("VmRSS", "VmHWM"))
        )
        if "VmRSS" in fields:
            run.rss.append((self.clock(), int(fields["VmRSS"].split()[0])))
        if "VmHWM" in fields:
            run.peak_rss_kb = max(run.peak_rss_kb, int(fields["VmHWM"].split()[0]))
